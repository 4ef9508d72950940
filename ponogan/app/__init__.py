"""The Gradio demo's logic, kept apart from its layout so it is tested without a browser: finding and
describing checkpoints, decoding uploads, the glyph-text tab and the moment gallery (``support``).
``app.py`` at the repository root builds the interface from these pieces."""
