"""Generated protobuf modules (and their .proto sources) for the wire formats tracemesh speaks."""
