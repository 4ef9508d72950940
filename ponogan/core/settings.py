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
DEVICES = ("auto", "cpu", "cuda", "mps")  # auto: CUDA, then MPS, then CPU (ponogan.core.runtime)
MIXED_PRECISION = ("no", "bf16", "fp16")  # accelerate's names

TEST_MODES = ("eval", "paper")  # pix2pix test time: running statistics, or the paper's batch statistics
DEFAULT_TEST_MODE = "eval"  # deterministic and batch-independent; see ponogan.inference.pipeline

EXPORT_FORMATS = ("onnx", "exported-program")  # ponogan export --format
EXPORT_STYLES = ("fixed", "input")  # MUNIT export: style baked in, or a second input
# the official --netG; cut: CUT's anti-aliased resnet_9blocks (ponogan.models.official.ARCH_VARIANTS)
OFFICIAL_ARCHS = ("resnet_9blocks", "resnet_6blocks", "unet_256", "unet_128", "cut")
OFFICIAL_NORMS = ("instance", "batch")  # the official --norm

# Network options a config or a weight file sets, as inclusive integer ranges (ponogan.models.registry
# checks them before building anything): 1024 is 16x the papers' widths (64), and the depths reach far
# beyond the presets (num_downs 8, n_blocks 9, n_layers 3-4).
NETWORK_LIMITS: dict[str, tuple[int, int]] = {
    **dict.fromkeys(("in_channels", "out_channels"), (1, 64)),
    **dict.fromkeys(("ngf", "ndf", "dim", "style_dim"), (1, 1024)),
    "mlp_dim": (1, 4096),
    "num_downs": (2, 12),
    **dict.fromkeys(("n_downsampling", "n_downsample", "style_downsample"), (0, 8)),
    **dict.fromkeys(("n_blocks", "n_res"), (0, 64)),
    "n_layers": (1, 8),
    "n_scales": (1, 6),
}
# Networks built from files a user was given (config.json, an official .pth) are checked on the meta
# device before allocating: at most MAX_PARAMETERS parameters each (1 GiB of float32 weights; the
# presets have 3-54 million) and MAX_ACTIVATIONS_PER_PIXEL outputs of all their layers per input pixel
# (the presets: 150-2750).
MAX_PARAMETERS = 2**28
MAX_ACTIVATIONS_PER_PIXEL = 2**15
# Largest image side (pixels) a training config may ask for: data.options load_size, crop_size, image_size.
MAX_IMAGE_SIDE = 4096
