"""The in-process embedding model: files, ONNX export, engine and batcher."""
