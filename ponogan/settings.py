"""Numbers and names several commands share, in a module with no heavy imports (no torch), so that the
commands can define their options, and ``--help`` answers at once.

Image limits: ``DEFAULT_MAX_PIXELS`` bounds what is *decoded* (Pillow's decompression-bomb threshold);
``MAX_PROCESSED_PIXELS`` / ``MAX_ASPECT`` bound what a network *processes*, after resizing and padding
to its stride, which is what costs memory. Peak RSS of ``ponogan translate`` on one image at about
``MAX_PROCESSED_PIXELS`` (fp32, CPU, ~0.52 GB before the run): resnet_9blocks 1920x1080 2.47 GB
(+0.94 GB per processed MP), unet_256 1440x1080 (1536x1280 padded) 2.00 GB (+0.75 GB/MP), MUNIT
1920x1080 (1920x1088) 4.70 GB (+2.0 GB/MP). Raise it (``--max-pixels``) on a machine with more memory.
"""

DEFAULT_MAX_PIXELS = 89_478_485  # decode limit (Pillow's decompression-bomb threshold)
MAX_PROCESSED_PIXELS = 2**21  # Full HD fits
MAX_ASPECT = 32  # longer side / shorter side; extreme strips are padded into mostly-empty tensors

SHORTCUTS = ("ms", "dms")  # PONO + Moment Shortcut, PONO + Dynamic Moment Shortcut (None: no PONO)
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: CUDA, then MPS, then CPU (ponogan.runtime)
MIXED_PRECISION = ("no", "bf16", "fp16")  # accelerate's names

TEST_MODES = ("eval", "paper")  # pix2pix test time: running statistics, or the paper's batch statistics
DEFAULT_TEST_MODE = "eval"  # deterministic and batch-independent; see ponogan.pipeline

EXPORT_FORMATS = ("onnx", "exported-program")  # ponogan export --format
EXPORT_STYLES = ("fixed", "input")  # MUNIT export: style baked in, or a second input
OFFICIAL_ARCHS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128")  # the official --netG
OFFICIAL_NORMS = ("instance", "batch")  # the official --norm
