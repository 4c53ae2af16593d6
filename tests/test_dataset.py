import torch
from torch.utils.data import DataLoader

from lvis_factory import tiny_lvis, write
from tailteacher.data.dataset import LvisDataset, Sample, Skipped, collate
from tailteacher.data.lvis_json import load_lvis


def test_sample_has_aligned_boxes_masks_and_classes(tmp_path):
    data = load_lvis(write(tmp_path, tiny_lvis()), tmp_path / "images")
    ds = LvisDataset(data)
    s = ds[1]  # image 2: classes 10 and 20
    assert isinstance(s, Sample) and s.image.shape == (3, 32, 40) and s.image.dtype == torch.uint8
    assert s.labels.tolist() == [0, 1]
    torch.testing.assert_close(
        s.boxes.as_subclass(torch.Tensor), torch.tensor([[2.0, 3, 10, 11], [14, 4, 22, 12]])
    )
    # The polygon square [2, 10] x [3, 11] rasterises to 8 x 8 pixels.
    assert s.masks.shape == (2, 32, 40) and s.masks.sum(dim=(1, 2)).tolist() == [64, 64]
    ys, xs = torch.nonzero(s.masks[0], as_tuple=True)
    assert (xs.min().item(), xs.max().item(), ys.min().item(), ys.max().item()) == (2, 9, 3, 10)


def test_corrupt_image_is_skipped_and_counted_through_workers(tmp_path):
    data = load_lvis(write(tmp_path, tiny_lvis()), tmp_path / "images")
    (tmp_path / "images/img/0004.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "images/img/0005.png").unlink()
    loader = DataLoader(LvisDataset(data), batch_size=4, collate_fn=collate, num_workers=2)
    seen, skipped = [], []
    for samples, skips in loader:
        seen += [s.image_id for s in samples]
        skipped += skips
    assert sorted(seen) == [1, 2, 3, 6]
    assert sorted(s.image_id for s in skipped) == [4, 5] and all(isinstance(s, Skipped) for s in skipped)
