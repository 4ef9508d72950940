"""The metrics ``ponogan eval`` knows: what each needs and which direction is better."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class MetricInfo:
    """``needs``: ``paired`` (fake/target pairs, no weights), ``fid`` (Inception features of both sets:
    FID and KID share them), ``lpips`` (paired + LPIPS weights) or ``diversity`` (several styled outputs +
    LPIPS weights). ``extras``: further values the metric writes next to its own (e.g. ``kid_std``)."""

    needs: str
    higher_is_better: bool
    description: str
    extras: tuple[str, ...] = ()


METRICS: dict[str, MetricInfo] = {
    "fid": MetricInfo(
        "fid", False, "Fréchet Inception Distance, all fakes vs all reals (pytorch-fid weights)"
    ),
    "kid": MetricInfo(
        "fid",
        False,
        "Kernel Inception Distance: unbiased MMD^2, cubic kernel, same features as FID; mean over subsets",
        extras=("kid_std",),
    ),
    "lpips": MetricInfo("lpips", False, "LPIPS distance of each fake to its target (AlexNet)"),
    "l1": MetricInfo("paired", False, "mean absolute error on the [0, 1] scale"),
    "psnr": MetricInfo("paired", True, "PSNR in dB, data range 1, per image then averaged"),
    "ssim": MetricInfo("paired", True, "SSIM, 11x11 Gaussian window, sigma 1.5 (Wang et al. 2004)"),
    "iou": MetricInfo("paired", True, "IoU of glyph masks (dark ink, as ponogan.data.glyph_mask)"),
    "centroid": MetricInfo("paired", False, "distance in pixels between glyph-mask centroids"),
    "diversity": MetricInfo("diversity", True, "mean pairwise LPIPS between outputs for different styles"),
}
DEFAULT_METRICS = ("fid", "lpips", "l1", "psnr", "ssim")

# values written next to a metric (not selectable on their own): name -> (higher is better, description)
EXTRA_VALUES: dict[str, tuple[bool, str]] = {
    "kid_std": (False, "standard deviation of KID over its subsets (0 when each subset is the whole set)"),
}


def with_extras(names) -> list[str]:
    """Metric names, each followed by the extra values it writes (``kid`` -> ``kid``, ``kid_std``)."""
    return [value for name in names for value in (name, *METRICS[name].extras)]


def parse_metrics(spec: str | list[str] | tuple[str, ...]) -> list[str]:
    """``"fid,l1"`` or ``["fid", "l1"]`` -> validated unique names in order (``all`` = every metric)."""
    names = spec.split(",") if isinstance(spec, str) else [n for item in spec for n in item.split(",")]
    names = [n.strip().lower() for n in names if n.strip()]
    if names == ["all"]:
        return list(METRICS)
    unknown = [n for n in names if n not in METRICS]
    if unknown or not names:
        raise ValueError(f"unknown metric(s) {unknown or names}; valid: {', '.join(METRICS)} (or 'all')")
    return list(dict.fromkeys(names))
