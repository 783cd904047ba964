"""The bouncing-balls world, numpy and scipy only: what training, export and serving all need.

simulator   physics of the paper's data (start states, walls, elastic collisions)
render      ball centres -> frames
sequences   the sequences of data set seed s, and the real video for a seed
pixels      intensities, stored uint8 pixels and signed [-1, 1] frames: the one conversion
metrics     Table 1, ball counts, motion statistics, distances between videos
manifest    the model card that export writes and inference reads (fields, format version)
digest      SHA-256 of files (checkpoints, exported models)
reference   the reference generator, one ball at a time (test oracle, benchmark baseline)

Nothing here imports torch, onnxruntime or BentoML (an import-linter contract holds it).
"""
