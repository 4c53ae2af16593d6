"""The progress helper: a tqdm bar on a terminal, plain lines every N steps in a log."""

import io

from tailteacher.progress import LineProgress, format_seconds, progress


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_format_seconds():
    assert format_seconds(0) == "0:00"
    assert format_seconds(75.4) == "1:15"
    assert format_seconds(3725) == "1:02:05"


def test_lines_every_n_steps_with_eta_and_no_carriage_return():
    out, clock = io.StringIO(), Clock()
    bar = LineProgress(total=10, desc="train", every=4, file=out, clock=clock)
    for step in range(1, 11):
        clock.t += 2.0
        if step == 5:
            bar.set_postfix({"loss": "0.5"}, refresh=False)
        bar.update(1)
    bar.close()
    assert out.getvalue().splitlines() == [
        "train 4/10 (40%) 0:08 elapsed, ETA 0:12",
        "train 8/10 (80%) 0:16 elapsed, ETA 0:04, loss=0.5",
        "train 10/10 (100%) 0:20 elapsed, ETA 0:00, loss=0.5",
    ]
    assert "\r" not in out.getvalue()


def test_default_every_gives_about_twenty_lines_and_resume_counts_from_initial():
    out, clock = io.StringIO(), Clock()
    bar = LineProgress(total=1000, initial=500, file=out, clock=clock)
    assert bar.every == 50
    for _ in range(500):
        clock.t += 1.0
        bar.update(1)
    bar.close()
    lines = out.getvalue().splitlines()
    assert len(lines) == 10
    assert lines[0] == "550/1000 (55%) 0:50 elapsed, ETA 7:30"  # 1 s per step since the start


def test_iterating_writes_the_last_step_once():
    out = io.StringIO()
    assert list(LineProgress(range(5), desc="predict", every=2, file=out)) == [0, 1, 2, 3, 4]
    assert [line.split(" elapsed")[0].rsplit(" ", 1)[0] for line in out.getvalue().splitlines()] == [
        "predict 2/5 (40%)",
        "predict 4/5 (80%)",
        "predict 5/5 (100%)",
    ]


def test_progress_chooses_by_terminal():
    out = io.StringIO()  # not a terminal
    assert isinstance(progress(total=3, file=out), LineProgress)
    bar = progress(total=3, file=out, terminal=True)
    assert type(bar).__name__ == "tqdm"
    bar.update(3)
    bar.close()
    assert "\r" in out.getvalue()
