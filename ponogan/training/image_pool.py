"""History of generated images for the discriminator (Shrivastava et al. 2017; CycleGAN's pool of 50).

Until the pool is full every fake goes in and is returned unchanged. Afterwards each fake is, with
probability 1/2, swapped for a random stored one (which is returned; the new fake takes its slot),
otherwise returned as is. Draws come from the global torch RNG, so the checkpointed RNG state plus
``state_dict()`` make the pool's behaviour exactly reproducible after a resume.
"""

from __future__ import annotations

import torch


class ImagePool:
    """``query(images (N, C, H, W)) -> (N, C, H, W)``: a mix of these fakes and older ones (detached)."""

    def __init__(self, size: int = 50):
        if size < 0:
            raise ValueError(f"image pool size must be >= 0, got {size}")
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor) -> torch.Tensor:
        images = images.detach()
        if self.size == 0:
            return images
        out = []
        for image in images:
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
            elif torch.rand(()).item() > 0.5:
                slot = int(torch.randint(0, self.size, ()).item())
                out.append(self.images[slot].clone())
                self.images[slot] = image.clone()
            else:
                out.append(image)
        return torch.cat(out, dim=0)

    def state_dict(self) -> dict[str, torch.Tensor | int]:
        """The stored images as one CPU tensor ``(K, C, H, W)`` (``K <= size``), for the checkpoint."""
        stacked = torch.cat(self.images).cpu() if self.images else torch.empty(0)
        return {"size": self.size, "images": stacked}

    def load_state_dict(self, state: dict, device: torch.device | str | None = None) -> None:
        if int(state["size"]) != self.size:
            raise ValueError(f"checkpoint image pool holds {state['size']} images, this run uses {self.size}")
        images = state["images"]
        self.images = [img.unsqueeze(0).to(device) for img in images] if images.numel() else []
