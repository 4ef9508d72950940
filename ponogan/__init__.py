"""ponogan: image-to-image translation with Positional Normalization (PONO) and Moment Shortcuts."""

__version__ = "0.1.0"
