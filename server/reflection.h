/* gRPC server reflection: grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo, so that grpcurl and other
 * reflection clients list and call quiverd's methods without the .proto files.
 *
 * The answers come from the API's FileDescriptorSet: protoc-c writes it when quiverd is built (every file of
 * QV_API_PROTOS in CMakeLists.txt, with its imports) and tools/embed_files.cmake builds it into the binary as
 * qv_api_descriptors. The call is a bidirectional stream that server/rpc.c serves as QV_STREAM_EACH: one response per
 * request, the stream ending when the client half-closes.
 *   list_services                  every service of the set (the Quiver, Admin, Health and reflection services)
 *   file_by_filename               that file, then its imports, transitively (each once), as the set's own bytes
 *   file_containing_symbol         the same for the file declaring a fully-qualified name: a package-qualified
 *                                  service, method (Service.Method), message (nested ones too) or enum
 *   all_extension_numbers_of_type  an empty list for a known message: the API declares no extensions
 *   file_containing_extension      NOT_FOUND, for the same reason
 * An unknown name gets an ErrorResponse (NOT_FOUND) and the stream goes on, as the protocol says. */
#ifndef QV_REFLECTION_H
#define QV_REFLECTION_H

#include "server/rpc.h"

int qv_reflection_info(void *app, qv_call_ctx_t *ctx, const ProtobufCMessage *req, ProtobufCMessage **resp,
                       qv_err_t *err);

#endif
