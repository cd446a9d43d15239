# Generated from proto/quiver/v1/quiver.proto with grpcio-tools 1.85.4: do not edit.
# Regenerate with tools/python/quiver-client/gen_stubs.sh.
