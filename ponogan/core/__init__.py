"""Infrastructure every layer uses and that knows nothing about images: atomic file writes
(``atomic``), the one error path and exit statuses (``messages``), limits and defaults shared by the
commands (``settings``), device and precision choice (``runtime``), multi-process helpers
(``distributed``) and lazy package exports (``lazy``)."""
