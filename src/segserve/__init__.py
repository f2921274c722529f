"""segserve: SAM2 (points/box) and Lang-SAM (text) image segmentation, as plain Python.

The package never imports TorchServe: `handlers/` are thin adapters over it.
"""
