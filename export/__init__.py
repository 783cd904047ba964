"""ONNX export of trained generators: `python -m export` (see export/onnx_export.py)."""
