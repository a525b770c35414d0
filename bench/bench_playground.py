"""How fast the playground is: frames per second on 2-D data, and a Fashion-MNIST epoch.

    python -m bench.bench_playground            # make bench-playground

1. Two spirals, a 2-8-8-2 tanh net: what one frame of Play costs (the boundary picture;
   the curves and histograms figure, blitted; a full redraw of that figure for reference),
   and Play's own loop run for a few seconds without a browser: training steps, boundary
   frames and curve frames per second. Target: at least 10 figure updates a second.
2. Fashion-MNIST, 5,000 images, a 784-128-10 ReLU net, batch size 64: seconds per epoch
   (training and the validation pass), target well under a second; and the Train panel's
   quick run (5,000 images, 784-512-256-10, one epoch) through utils.core.train.train.

One BLAS thread (as the notebooks train), medians of repeated runs.
"""
import asyncio
import statistics
import time

from threadpoolctl import threadpool_limits

from bench import blas
from utils.figures.playground import Playground


def median_seconds(fn, repeat):
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def play_for(pg, seconds):
    """Run Play's asyncio loop for `seconds`; returns (steps, boundary frames, stats frames) per second."""
    counts = {"picture": 0, "stats": 0}
    draw = pg.view.draw

    def counted(stats=True):
        counts["picture"] += 1
        counts["stats"] += bool(stats)
        draw(stats=stats)

    pg.view.draw = counted

    async def main():
        steps = pg.steps
        task = pg.play()
        await asyncio.sleep(seconds)
        pg.pause()
        await task
        return pg.steps - steps

    steps = asyncio.run(main())
    pg.view.draw = draw
    return steps / seconds, counts["picture"] / seconds, counts["stats"] / seconds


def main():
    with threadpool_limits(limits=1, user_api="blas"):
        pg = Playground("spirals", hidden_layers=2, units=8, activation="tanh")
        pg.run(epochs=30)
        view = pg.view
        picture = median_seconds(view.picture_png, 50)
        stats = median_seconds(lambda: view.stats_figure.render(pg), 30)
        view.stats_figure._key = None  # force the full redraw every time
        full = median_seconds(lambda: (setattr(view.stats_figure, "_key", None), view.stats_figure.render(pg)), 5)
        epoch = median_seconds(lambda: pg.run(epochs=1, draw=False), 50)
        steps, pictures, curves = play_for(pg, 5.0)
        print(blas.describe())
        print("Playground, two spirals (200 training points), 2-8-8-2 tanh, batch size 16, one BLAS thread")
        print(f"  boundary picture (80x80 grid, PNG)      {picture * 1e3:7.1f} ms  -> {1 / picture:6.0f} per second")
        print(f"  curves + histograms, blitted            {stats * 1e3:7.1f} ms  -> {1 / stats:6.0f} per second")
        print(f"  curves + histograms, full redraw        {full * 1e3:7.1f} ms  (only when an axis grows)")
        print(f"  one epoch (13 steps + validation)       {epoch * 1e3:7.1f} ms")
        print(f"  Play for 5 s: {steps:.0f} steps/s, {pictures:.1f} boundary updates/s, {curves:.1f} curve updates/s")

        pgf = Playground("fashion_mnist", hidden_layers=1, units=128, activation="relu", batch_size=64, lr=0.03)
        fashion_epoch = median_seconds(lambda: pgf.run(epochs=1, draw=False), 5)
        templates = median_seconds(pgf.view.picture_png, 20)
        print("Playground, Fashion-MNIST 5,000 training + 1,000 validation images, 784-128-10 relu, batch size 64")
        print(f"  one epoch (79 steps + validation)       {fashion_epoch * 1e3:7.1f} ms")
        print(f"  first-layer templates picture           {templates * 1e3:7.1f} ms")

        try:
            from utils.core.experiment import load_data
            from utils.figures.panel import training_panel
            from utils.plumbing.config import load_config
        except ImportError as e:
            print(f"Train panel: skipped ({e})")
            return
        cfg = load_config("mlp_fashion", overrides={"num_epochs": 1})
        panel = training_panel(cfg, load_data(cfg))
        quick = median_seconds(lambda: panel.train(quick=True), 3)
        print(f"Train panel quick run, 5,000 images, {'-'.join(map(str, cfg['model']['hidden_sizes']))} MLP, "
              f"1 epoch (+ 6,000 validation images, curves): {quick:.2f} s")


if __name__ == "__main__":
    main()
