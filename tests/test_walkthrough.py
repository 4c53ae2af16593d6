import pytest
import torch

from tailteacher import walkthrough
from tailteacher.cli import main


def test_data_is_long_tailed_and_deterministic():
    p = walkthrough.Problem()
    a, b = walkthrough.make_data(p, seed=3), walkthrough.make_data(p, seed=3)
    assert torch.equal(a.train[0], b.train[0]) and torch.equal(a.counts, b.counts)
    # Rare classes are spread across families: every family has a rare class and a look-alike
    # that is not rare.
    groups = a.group.view(p.families, p.variants)
    assert bool(((groups == 0).any(1) & (groups > 0).any(1)).all())
    assert a.group.tolist().count(0) > 0 and a.group.tolist().count(2) > 0
    mined, same = a.unlabeled["mined"][1], a.unlabeled["same prior"][1]
    rare = torch.nonzero(a.group == 0).squeeze(1)
    assert torch.isin(mined, rare).float().mean() > torch.isin(same, rare).float().mean()


def test_one_seed_measures_what_it_reports():
    r = walkthrough.run_seed(walkthrough.Problem(), 0, eps=0.1, gamma=1.5, lams=[0.0, 1.0])
    teachers = r.teachers
    # Label smoothing lowers the overconfidence of a one-hot teacher (robust on this problem).
    assert teachers["uniform eps=0.1"].ece < teachers["one-hot"].ece
    for s in r.smoothing.values():
        assert 0 < s["entropy_ratio"] <= 1
    assert all(0 <= v <= 1 for pool in r.pseudo_label_ece.values() for v in pool.values())


def test_cli_labels_demo(capsys):
    assert main(["labels-demo", "--seeds", "1"]) == 0
    out = capsys.readouterr().out
    assert "Eq. 4  CCECE" in out and "lambda=2" in out


def test_cli_bad_argument_exits_2(capsys):
    assert main(["labels-demo", "--seeds", "0"]) == 2
    assert "--seeds: expected a positive integer" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        main(["labels-demo", "--eps", "x"])
    assert exc.value.code == 2
