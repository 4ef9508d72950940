"""The Gradio demo, in layers: ``layout`` builds the page and wires its events, ``handlers`` computes what
each event returns (plain values, no gradio, so it is tested without a browser), ``support`` holds the logic
under both (finding and describing checkpoints, decoding uploads, glyph text, moment maps) and ``examples``
renders the clickable examples. ``app.py`` at the repository root parses the flags and launches."""
