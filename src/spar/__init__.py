"""spar: placement-aware self-supervised learning for multi-node sensor systems.

The package turns raw recordings of multi-node, multi-modal sensor systems into
one Zarr store per dataset, pretrains SPAR and baseline encoders on it, and
evaluates frozen encoders on the downstream tasks of the SPAR paper.
"""

__version__ = "0.1.0"
