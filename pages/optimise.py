"""What-if training: gradient descent on the prediction itself, one copy per loss.

Widgets and layout only: the run is ``segloss_core.analyses.optimise.optimise`` (cached on the case digest and
the settings), the figures come from ``segloss_core.plots.optimise``. The step slider and the
play / pause toggle live in one ``st.fragment`` that reruns itself on a timer while playing.
"""

from __future__ import annotations

import streamlit as st
import torch._dynamo  # noqa: F401 - torch.optim imports it on the first optimiser (~1 s): here the server's warm-up pays it

import segloss_core as sc
from segloss_core.analyses import optimise as opt
from segloss_core.plots import optimise as op
from ui.cache import page_cache, progress_bar
from ui.session import current_case, current_params, panel

KEY = "opt_"
FRAME = KEY + "frame"
PLAY = KEY + "play"
FRAME_SECONDS = 0.5
LRS = tuple(sorted({1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0}
                   | set(opt.DEFAULT_LR.values())))
SIDES = (32, 48, 64, 96, 128, 192, 256)
WORKING_SIDE = {"logits": 128, "cnn": 64}


# ----------------------------------------------------------------------------- cached numerics


@page_cache(max_entries=12)
def _train(case, settings: opt.Settings, progress=None) -> opt.Trajectory:
    """The run for ``(case, settings)``; ``progress(fraction, message)`` is drawn by the caller."""
    return opt.optimise(case, settings, progress=progress)


@page_cache(max_entries=12)
def _explanation(case, settings: opt.Settings) -> list[str]:
    return opt.explain(_train(case, settings))


# ----------------------------------------------------------------------------- settings


def _settings(case, params) -> opt.Settings:
    available = sc.list_losses()
    titles = {n: sc.get_loss(n).title for n in available}
    cols = st.columns([3, 2, 2])
    losses = cols[0].multiselect(
        "Losses", available, default=[n for n in opt.DEFAULT_LOSSES if n in available], key=KEY + "losses",
        format_func=titles.get, max_selections=opt.MAX_LOSSES,
        help="Each loss trains its own copy of the prediction, all from the same start.")
    model = cols[1].segmented_control(
        "Trained object", list(opt.MODELS), default="logits", format_func=opt.MODELS.get, key=KEY + "model",
        help="Free logits: every pixel is its own parameter (the loss's optimum for the target itself). "
             "Tiny CNN: four convolution layers fed with a noisy image of the case; pixels that look alike "
             "get alike predictions.") or "logits"
    optimiser = cols[2].segmented_control("Optimiser", list(opt.OPTIMISERS), default="adam",
                                          format_func=opt.OPTIMISERS.get, key=KEY + "optimiser") or "adam"

    cols = st.columns([2, 2, 3])
    lr = cols[0].select_slider(
        "Learning rate", LRS, value=opt.DEFAULT_LR[(model, optimiser)], key=f"{KEY}lr_{model}_{optimiser}",
        format_func=lambda v: f"{v:g}",
        help="Free logits: each loss is multiplied by the pixel count N, so SGD's rate is per pixel "
             "(CE moves a logit by lr·(s − g) per step). Adam does not depend on that scale.")
    steps = cols[1].slider("Steps", 10, 1000, 200, 10, key=KEY + "steps")
    target = cols[2].selectbox(
        "Target", list(opt.TARGETS), index=list(opt.TARGETS).index("soft_band"), format_func=opt.TARGETS.get,
        key=KEY + "target",
        help="On a clean target every loss reaches the ground truth. The ambiguous targets are where the "
             "losses disagree.")

    kw: dict = {}
    cols = st.columns(3)
    if target in opt.BAND_TARGETS:
        kw["pi"] = cols[0].slider("π: foreground rate in the band", 0.0, 1.0, 0.3, 0.05, key=KEY + "pi")
        kw["band_width"] = cols[1].slider("Band width (px, both sides of the boundary)", 2.0, 20.0, 6.0, 1.0,
                                          key=KEY + "band_width")
    if target == "label_noise":
        kw["flip"] = cols[0].slider("Flip rate", 0.0, 0.5, 0.1, 0.01, key=KEY + "flip")
    if target in ("random_band", "label_noise"):
        kw["annotators"] = cols[2].slider(
            "Annotators", 1, 16, 4, key=KEY + "annotators",
            help="The same image labelled this many times at random; the loss is the mean over them. With free "
                 "logits one annotation is simply memorised. Costs one loss evaluation per annotator.")
    if target == "soft_labels":
        kw["soft_sigma"] = cols[0].slider("Blur of the labels (sigma, px)", 0.5, 8.0, 2.0, 0.5, key=KEY + "soft_sigma")

    with st.expander("More settings"):
        cols = st.columns(4)
        if model == "logits":
            kw["start"] = cols[0].selectbox("Start", list(opt.STARTS), format_func=opt.STARTS.get, key=KEY + "start")
            if kw["start"] == "noise":
                kw["start_noise"] = cols[1].slider("Start logit noise (std)", 0.1, 5.0, 1.0, 0.1,
                                                   key=KEY + "start_noise")
        else:
            kw["image_noise"] = cols[0].slider("Image noise (std)", 0.0, 2.0, 0.5, 0.05, key=KEY + "image_noise",
                                               help="The CNN sees the label map (class k at intensity k/(C−1)), "
                                                    "blurred, plus Gaussian noise.")
            kw["image_blur"] = cols[1].slider("Image blur (sigma, px)", 0.0, 6.0, 1.0, 0.5, key=KEY + "image_blur")
            kw["cnn_width"] = cols[2].select_slider("CNN channels", (4, 8, 16, 32), value=8, key=KEY + "cnn_width")
        if optimiser == "sgd":
            kw["momentum"] = cols[3].slider("SGD momentum", 0.0, 0.95, 0.0, 0.05, key=KEY + "momentum")
        cols = st.columns(4)
        kw["seed"] = int(cols[0].number_input("Seed", 0, 1_000_000, 0, key=KEY + "seed"))
        sides, default_side = opt.working_sides(case.gt.shape, SIDES, WORKING_SIDE[model])
        kw["max_side"] = cols[1].select_slider(
            "Working resolution (longer side, px)", sides, value=default_side, key=f"{KEY}max_side_{model}",
            help="The case is reduced by area averaging before training (the CNN runs its convolutions "
                 "forward and backward at every step, so it costs more per pixel than free logits, "
                 "hence its smaller default).")
    loss_params = {n: dict(params[n]) for n in losses if params.get(n)}
    return opt.Settings(losses=tuple(losses), model=model, optimiser=optimiser, lr=float(lr), steps=int(steps),
                        target=target, params=loss_params, **kw)


# ----------------------------------------------------------------------------- animation


FRAME_COLUMNS = {"title": "loss", "loss": "loss value", "dice": "Dice", "size_ratio": "|P| / |G|",
                 "band_q": "band q", "calibration": "mean |q − g| (disputed)"}


def _row_text(traj: opt.Trajectory, frame: int) -> list[dict]:
    return [{FRAME_COLUMNS[k]: v for k, v in row.items()} for row in traj.frame_rows(frame)]


def _on_play(first: int, last: int) -> None:
    """Pressing Play on the last step starts again from the first."""
    if st.session_state.get(PLAY) and st.session_state.get(FRAME) == last:
        st.session_state[FRAME] = first


def animation(traj: opt.Trajectory) -> None:
    """Masks, per-step numbers and curves at the chosen step; Play advances it on a timer."""
    steps = [int(s) for s in traj.frame_steps]
    if st.session_state.get(FRAME) not in steps:
        st.session_state[FRAME] = steps[-1]
    playing = bool(st.session_state.get(PLAY, False))

    # run_every is fixed when the fragment is defined: Play / Pause rerun the whole page to change it
    @st.fragment(run_every=FRAME_SECONDS if playing else None)
    def _panel() -> None:
        with panel("the animation"):
            if playing and st.session_state.get(PLAY):
                i = steps.index(st.session_state[FRAME]) if st.session_state[FRAME] in steps else 0
                if i >= len(steps) - 1:
                    st.session_state[PLAY] = False
                    st.rerun()
                st.session_state[FRAME] = steps[i + 1]
            cols = st.columns([1, 2, 6])
            play = cols[0].toggle("Play", key=PLAY, on_change=_on_play, args=(steps[0], steps[-1]),
                                  help=f"Advance one recorded step every {FRAME_SECONDS:g} s.")
            view = cols[1].segmented_control("Show", ["probability", "mask"], default="probability",
                                             key=KEY + "view") or "probability"
            step = cols[2].select_slider("Step", steps, key=FRAME)
            if play != playing:
                st.rerun()
            frame = steps.index(step)
            st.plotly_chart(op.frame_figure(traj, frame, view=view), width="stretch", key=KEY + "frames")
            st.dataframe(_row_text(traj, frame), hide_index=True, width="stretch",
                         column_config={k: st.column_config.NumberColumn(format="%.4g")
                                        for k in list(FRAME_COLUMNS.values())[1:]})
            st.plotly_chart(op.curves_figure(traj, step), width="stretch", key=KEY + "curves")
            st.caption("Red: ground-truth outline; dotted white: the ambiguous band. Dashed lines in the band "
                       "panel: each loss's band-model optimum q* (the loss with every band pixel at one "
                       "probability, the rest at its target). HD95 is computed on a coarser schedule.")

    _panel()


# ----------------------------------------------------------------------------- page


COLUMNS = {
    "title": "loss", "status": "status", "final_loss": "final loss", "dice": "Dice", "hd95": "HD95",
    "precision": "precision", "recall": "recall", "pred_size": "|P| (px)", "gt_size": "|G| (px)",
    "size_ratio": "|P| / |G|", "soft_size": "Σ s (soft size)", "target_size": "Σ g (target size)",
    "band_q": "band q", "band_q_star": "band-model q*", "calibration": "mean |q − g| (disputed)",
    "undecided": "undecided share (0.1 < q < 0.9)",
}


def final_table(traj: opt.Trajectory) -> None:
    rows = [{COLUMNS[k]: v for k, v in row.items() if k in COLUMNS} for row in traj.rows]
    fmt = {c: st.column_config.NumberColumn(format="%.4g") for c in COLUMNS.values()
           if c not in ("loss", "status", "|P| (px)", "|G| (px)")}
    st.dataframe(rows, hide_index=True, width="stretch", column_config=fmt)
    st.caption("Metrics of the arg-max prediction against the case's own ground truth at the last step; "
               "Σ g is the expected size of the training target (the mean over annotators).")


st.title("What-if training")
st.caption("Gradient descent on the prediction itself: each loss trains its own copy of the prediction from "
           "the same start. On a clean target they all reach the ground truth; on an ambiguous one each "
           "converges to its own optimum, as the papers predict.")

case = current_case()
if case.ndim == 3:
    z = st.slider("Slice", 0, case.gt.shape[0] - 1, case.gt.shape[0] // 2, key=KEY + "slice")
    case = case.slice(z)

settings = None
with panel("the settings"):
    settings = _settings(case, current_params())
if settings is None:
    st.stop()
if not settings.losses:
    st.info("Choose at least one loss.")
    st.stop()

try:
    settings.validate()
    case = opt.training_case(case, settings)  # the GT only, unless the run starts from the prediction
    with progress_bar("Training:") as tick:
        traj = _train(case, settings, progress=tick)
except ValueError as err:
    st.warning(str(err).splitlines()[0])
    st.stop()

for name, reason in traj.unavailable.items():
    st.warning(f"{sc.get_loss(name).title} is not defined on this case and was left out: {reason}")
in_force = [f"{n}({', '.join(f'{k}={v}' for k, v in settings.params[n].items())})" for n in settings.params]
size = "×".join(str(s) for s in traj.gt.shape)
st.caption(f"{traj.settings.steps} steps of {opt.OPTIMISERS[settings.optimiser]} (lr {settings.learning_rate:g}) "
           f"on {size} px" + (f" (reduced from {traj.reduced_from[0]}×{traj.reduced_from[1]})"
                             if traj.reduced_from else "")
           + f", target: {traj.targets.note}; {traj.seconds:.1f} s on {traj.device}. Loss parameters: "
           + (", ".join(in_force) + " (set on the Playground)" if in_force else "registry defaults"))

animation(traj)

st.subheader("Where each loss ended")
with panel("the final table"):
    final_table(traj)

if traj.band is not None:
    st.subheader("The band model: loss vs band probability")
    with panel("the band model"):
        st.plotly_chart(op.band_model_figure(traj), width="stretch", key=KEY + "band")
        st.caption("Each loss with every band pixel at probability q and the rest of the image at its target, "
                   "scaled (minimum at 0, largest value for 0.05 ≤ q ≤ 0.95 at 1): diamond = its minimiser q*, circle = where gradient descent ended (the "
                   "mean band probability). CE's minimum is at q = π (theory B1), linear Dice's at 0 or 1 (theory B2), "
                   + ("squared Dice's at q = π too (soft labels: the target itself)." if traj.settings.target == "soft_band"
                      else "squared Dice's in between (theory B3)."))

st.subheader("What converged where")
with panel("the explanation"):
    for line in _explanation(case, settings):
        st.markdown(f"- {line}")
