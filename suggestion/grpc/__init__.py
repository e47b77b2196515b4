"""Katib's gRPC suggestion API: generated messages (``api_pb2``) and stubs (``api_pb2_grpc``)."""
