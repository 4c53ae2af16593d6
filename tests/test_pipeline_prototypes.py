import torch

from tailteacher.labels import class_prototypes
from tailteacher.pipeline.instance_embedding import (
    crop_embedder,
    crop_instances,
    pad_batch,
    pool_instances,
    roi_embedder,
)
from tailteacher.pipeline.prototypes import (
    accumulate_prototypes,
    load_prototypes,
    nearest_classes_table,
    save_prototypes,
    smoothing_from_prototypes,
)


def test_pool_instances_is_the_mean_inside_the_box():
    # Feature map at stride 1: channel 0 is x, channel 1 is 1 everywhere. The RoIAlign samples of
    # box [2, 0, 6, 4] lie at x in (2, 6), symmetric around 4, so the mean of channel 0 is 4 - 0.5
    # (aligned=True shifts pixel centres by half a pixel).
    h, w = 8, 8
    x = torch.arange(w, dtype=torch.float32).expand(h, w)
    feats = torch.stack([x, torch.ones(h, w)])[None]
    emb = pool_instances(feats, [torch.tensor([[2.0, 0.0, 6.0, 4.0]])], stride=1.0)
    torch.testing.assert_close(emb, torch.tensor([[3.5, 1.0]]))
    assert pool_instances(feats, [torch.zeros(0, 4)], 1.0).shape == (0, 2)


def test_accumulate_prototypes_equals_one_shot_mean():
    # A feature function that returns the image itself at stride 1: a box's embedding is the mean
    # colour inside it.
    def identity(images):
        return images, 1.0

    red, blue = torch.zeros(3, 8, 8), torch.zeros(3, 8, 8)
    red[0], blue[2] = 1.0, 1.0
    batches = [
        (
            [red, blue],
            [torch.tensor([[0.0, 0, 4, 4]]), torch.tensor([[1.0, 1, 5, 5]])],
            [torch.tensor([0]), torch.tensor([1])],
        )
    ]
    acc = accumulate_prototypes(batches, roi_embedder(identity), num_classes=3)
    protos, counts = acc.compute()
    torch.testing.assert_close(protos, torch.tensor([[1.0, 0, 0], [0, 0, 1], [0, 0, 0]]))
    assert counts.tolist() == [1, 1, 0]
    ref, _ = class_prototypes(torch.tensor([[1.0, 0, 0], [0, 0, 1]]), torch.tensor([0, 1]), 3)
    torch.testing.assert_close(protos, ref)


def _x_ramp(h: int, w: int) -> torch.Tensor:
    """[3, h, w]: channel 0 is the pixel's column x, channel 1 its row y, channel 2 is 1."""
    x = torch.arange(w, dtype=torch.float32).expand(h, w)
    y = torch.arange(h, dtype=torch.float32).unsqueeze(1).expand(h, w)
    return torch.stack([x, y, torch.ones(h, w)])


def test_crop_instances_samples_the_box_at_the_crop_resolution():
    # Box [2, 0, 6, 4] at 4x4 without context: one sample per output pixel, at pixel centres
    # 2..5 (aligned=True), so the crop's channel 0 reads the columns 2, 3, 4, 5 and channel 1 the rows.
    image = _x_ramp(8, 8)
    crops = crop_instances([image], [torch.tensor([[2.0, 0.0, 6.0, 4.0]])], size=4, context=0.0)
    assert crops.shape == (1, 3, 4, 4)
    torch.testing.assert_close(crops[0, 0], torch.tensor([2.0, 3.0, 4.0, 5.0]).expand(4, 4))
    torch.testing.assert_close(crops[0, 1], torch.tensor([0.0, 1.0, 2.0, 3.0]).unsqueeze(1).expand(4, 4))


def test_crop_instances_adds_context_clipped_to_the_image():
    # Box [0, 0, 4, 4] with context 0.5 grows to [-2, -2, 6, 6], clipped to [0, 0, 6, 6]; a 6x6 crop
    # of it is the image's top-left 6x6 pixels exactly. A box in the second image keeps its order.
    a, b = _x_ramp(8, 8), 2 * _x_ramp(10, 12)
    crops = crop_instances(
        [a, b], [torch.tensor([[0.0, 0.0, 4.0, 4.0]]), torch.tensor([[6.0, 2.0, 10.0, 6.0]])], 6, 0.5
    )
    torch.testing.assert_close(crops[0], a[:, :6, :6])
    # [6, 2, 10, 6] grows to [4, 0, 12, 8] (inside the 12-wide image): 8 px into 6, columns 4..11.
    assert crops.shape == (2, 3, 6, 6)
    assert float(crops[1, 0].min()) > 2 * 4 - 1e-4 and float(crops[1, 0].max()) < 2 * 11 + 1e-4
    assert crop_instances([a], [torch.zeros(0, 4)], 6).shape == (0, 3, 6, 6)


def test_crop_embedder_pools_each_crop():
    # crop_fn = mean colour of the crop: a box inside a red square embeds as pure red, one in the
    # black corner (its bilinear samples stay off the square) as black.
    def mean_colour(crops):
        return crops.mean(dim=(2, 3))

    image = torch.zeros(3, 16, 16)
    image[0, 4:12, 4:12] = 1.0
    embed = crop_embedder(mean_colour, size=8, context=0.0)
    emb = embed([image], [torch.tensor([[5.0, 5.0, 11.0, 11.0], [0.0, 13.0, 3.0, 16.0]])])
    torch.testing.assert_close(emb, torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]]))
    assert embed([image], [torch.zeros(0, 4)]).shape == (0, 3)


def test_pad_batch_keeps_images_top_left():
    a, b = torch.ones(3, 2, 5), torch.full((3, 4, 3), 2.0)
    out = pad_batch([a, b])
    assert out.shape == (2, 3, 4, 5) and out[0, :, 2:].abs().sum() == 0 and out[1, :, :, 3:].abs().sum() == 0


def test_save_load_and_nearest_table(tmp_path):
    protos = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    counts = torch.tensor([5, 1, 3])
    sim, smoothing, ratio = smoothing_from_prototypes(protos, counts, gamma=1.5)
    assert 0 < ratio <= 1
    path = save_prototypes(tmp_path, protos, counts, sim, smoothing)
    back = load_prototypes(path)
    torch.testing.assert_close(back["smoothing"], smoothing.float())
    assert back["counts"].tolist() == [5, 1, 3]
    table = nearest_classes_table(sim, ["cat", "lynx", "car"], k=1)
    assert "| cat | lynx (0.994) |" in table and "| car | lynx (0.110) |" in table
