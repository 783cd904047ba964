"""What the service needs at inference time, numpy + onnxruntime + Pillow + PyAV only (never torch)."""
