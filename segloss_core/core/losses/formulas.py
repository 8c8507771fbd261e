r"""LaTeX of each loss for its resolved parameters (``LossSpec.formula_for``), so the displayed formula
is the one the code computes.

Notation shared by every formula: :math:`s_{ic}` and :math:`g_{ic}` are the predicted probability
and the target of class ``c`` at pixel ``i``; ``N`` pixels per sample; classes ``0..C-1`` with
``0`` the background; :math:`\epsilon` is the ``smooth`` parameter. Region losses use the soft
counts :math:`TP_c`, :math:`FP_c = \sum_i s_{ic} - TP_c`, :math:`FN_c = \sum_i g_{ic} - TP_c`.
Sums :math:`\sum_i` run over one sample's pixels (the loss is then averaged over the samples)
unless the formula says the batch is pooled. Logarithms and fractional powers are clamped at
``EPS = 1e-7`` in the code (not shown). Each builder takes the parameters resolved by
:meth:`segloss_core.core.spec.LossSpec.resolve_params`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

Params = Mapping[str, Any]


# ----------------------------------------------------------------------------------------------
# pieces
# ----------------------------------------------------------------------------------------------


def class_mean(include_background: bool) -> str:
    """``1/C sum_{c=0}^{C-1}`` or ``1/(C-1) sum_{c=1}^{C-1}``."""
    return r"\frac{1}{C}\sum_{c=0}^{C-1}" if include_background else r"\frac{1}{C-1}\sum_{c=1}^{C-1}"


def class_sum(include_background: bool) -> str:
    return r"\sum_{c=0}^{C-1}" if include_background else r"\sum_{c=1}^{C-1}"


def pooling(batch: bool) -> str:
    """How the pixel sums run: per sample (then the mean over samples) or pooled over the batch."""
    return (r"\text{sums }\textstyle\sum_i\text{ over the whole batch's pixels (one ratio per class)}" if batch
            else r"\text{sums }\textstyle\sum_i\text{ over each sample's pixels, then the mean over samples}")


def tp_definition(soft_label: bool) -> str:
    """The soft true positives: the product sum, or MONAI's soft-label form."""
    tp = (r"TP_c=\tfrac12\sum_i\big(s_{ic}+g_{ic}-|s_{ic}-g_{ic}|\big)" if soft_label
          else r"TP_c=\sum_i s_{ic}g_{ic}")
    return tp + r",\ FP_c=\sum_i s_{ic}-TP_c,\ FN_c=\sum_i g_{ic}-TP_c"


def vector(name: str, values: Sequence[float] | None, default: str) -> str:
    """``name = (v_0, ..., v_{C-1})`` for given per-class numbers, else the default's description."""
    if values is None:
        return default
    return name + "=(" + ",".join(f"{v:g}" for v in values) + ")"


def where(main: str, *parts: str) -> str:
    """The formula on the first line, its definitions on the second, notes (``\\text``) on the third."""
    defs = r",\quad ".join(p for p in parts if p and not p.startswith(r"\text"))
    notes = r",\quad ".join(p for p in parts if p.startswith(r"\text"))
    lines = [line for line in (main, defs, notes) if line]
    return lines[0] if len(lines) == 1 else r"\begin{gathered}" + r"\\ ".join(lines) + r"\end{gathered}"


def dice_ratio(squared: bool) -> str:
    """Per-class soft Dice of the region losses (``squared``: V-Net denominator, product TP)."""
    if squared:
        return r"\frac{2\sum_i s_{ic}g_{ic}+\epsilon}{\sum_i s_{ic}^2+\sum_i g_{ic}^2+\epsilon}"
    return r"\frac{2\,TP_c+\epsilon}{\sum_i s_{ic}+\sum_i g_{ic}+\epsilon}"


def ce_body(weight: str = "") -> str:
    return r"-\frac{1}{N}\sum_{i=1}^{N}\sum_{c=0}^{C-1}" + weight + r"g_{ic}\log s_{ic}"


def gdl_body(p: Params) -> str:
    k = class_sum(p["include_background"])
    return (r"1-\frac{2" + k + r"w_c\,TP_c+\epsilon}{" + k + r"w_c\big(\sum_i s_{ic}+\sum_i g_{ic}\big)+\epsilon}")


GDL_WEIGHTS = (r"w_c=\frac{1}{(\sum_i g_{ic})^2}\ \text{(an empty class: the largest finite } w_c"
               r"\text{ of the sample)}")


# ----------------------------------------------------------------------------------------------
# distribution losses
# ----------------------------------------------------------------------------------------------


def wce(p: Params) -> str:
    return where(r"L_{WCE}=" + ce_body(r"w_c\,"), vector("w", p["weights"], r"w_c=1\ \text{(plain CE)}"))


def focal(p: Params) -> str:
    return where(r"L_{FL}=-\frac{1}{N}\sum_{i=1}^{N}\sum_{c=0}^{C-1}\alpha_c(1-s_{ic})^{\gamma}g_{ic}\log s_{ic}",
                 vector(r"\alpha", p["alpha"], r"\alpha_c=1"))


def dpce(p: Params) -> str:
    classes = r"c\ge 0" if p["include_background"] else r"c\ge 1"
    return where(r"L_{DPCE}=-\frac{1}{N}\sum_{i=1}^{N}(1+D_i)\sum_{c=0}^{C-1}g_{ic}\log s_{ic}",
                 r"D_i=1-\frac{d_i}{\max_j d_j}",
                 r"d_i=\text{distance to the nearest ground-truth boundary pixel of the classes }" + classes)


# ----------------------------------------------------------------------------------------------
# region losses
# ----------------------------------------------------------------------------------------------


def sensitivity_specificity(p: Params) -> str:
    return where(r"\frac{1}{C-1}\sum_{c=1}^{C-1}\Big[w\frac{\sum_i (g_{ic}-s_{ic})^2g_{ic}}{\sum_i g_{ic}+\epsilon}"
                 r"+(1-w)\frac{\sum_i (g_{ic}-s_{ic})^2(1-g_{ic})}{\sum_i (1-g_{ic})+\epsilon}\Big]",
                 pooling(p["batch"]))


def _overlap(p: Params, ratio: str, uses_counts: bool = True) -> str:
    """``1 - class mean of ratio`` with the class set, the TP definition and the pooling."""
    body = "1-" + class_mean(p["include_background"]) + ratio
    return where(body, tp_definition(p.get("soft_label", False)) if uses_counts else "", pooling(p["batch"]))


def dice(p: Params) -> str:
    return _overlap(p, dice_ratio(p["squared"]), uses_counts=not p["squared"])


def iou(p: Params) -> str:
    if p["squared"]:
        ratio = (r"\frac{2\sum_i s_{ic}g_{ic}+\epsilon}"
                 r"{2\big(\sum_i s_{ic}^2+\sum_i g_{ic}^2-\sum_i s_{ic}g_{ic}\big)+\epsilon}")
        return _overlap(p, ratio, uses_counts=False)
    return _overlap(p, r"\frac{2\,TP_c+\epsilon}{2\,(TP_c+FP_c+FN_c)+\epsilon}")


TVERSKY = r"\frac{TP_c+\epsilon}{TP_c+\alpha\,FP_c+\beta\,FN_c+\epsilon}"


def tversky(p: Params) -> str:
    return _overlap(p, TVERSKY)


def focal_tversky(p: Params) -> str:
    return where(class_mean(p["include_background"]) + r"\left(1-T_c\right)^{1/\gamma}", "T_c=" + TVERSKY,
                 tp_definition(p["soft_label"]), pooling(p["batch"]))


def asymmetric(p: Params) -> str:
    return _overlap(p, r"\frac{TP_c+\epsilon}{TP_c+\frac{1}{1+\beta^2}FP_c+\frac{\beta^2}{1+\beta^2}FN_c+\epsilon}")


def generalized_dice(p: Params) -> str:
    return where(gdl_body(p), GDL_WEIGHTS, tp_definition(p["soft_label"]), pooling(p["batch"]))


def penalty_gdl(p: Params) -> str:
    return where(r"\frac{L_{GD}}{1+k\,(1-L_{GD})}", "L_{GD}=" + gdl_body(p), GDL_WEIGHTS,
                 tp_definition(p["soft_label"]), pooling(p["batch"]))


LOVASZ_SORT = (r"\overline{\Delta_J}(m)=\sum_r m_{\pi(r)}h_r\ \text{(errors sorted in decreasing order, } h_r"
               r"\text{ the Jaccard increments)}")


def _lovasz_pool(per_image: bool) -> str:
    return (r"\text{per image, then the mean over images}" if per_image
            else r"\text{all pixels of the batch pooled into one sort}")


def lovasz_softmax(p: Params) -> str:
    return where(r"\frac{1}{|C_{present}|}\sum_{c\in C_{present}}\overline{\Delta_{J}}\big(|g_{c}-s_{c}|\big)",
                 LOVASZ_SORT, _lovasz_pool(p["per_image"]))


def lovasz_hinge(p: Params) -> str:
    return where(r"\overline{\Delta_J}\big(\max(0,\,1-m_i(2g_{i1}-1))\big)", r"m_i=\log s_{i1}-\log s_{i0}",
                 LOVASZ_SORT, _lovasz_pool(p["per_image"]))


def mcc(p: Params) -> str:
    ratio = (r"\frac{TP_c\,TN_c-FP_c\,FN_c+\epsilon_{nr}}"
             r"{\sqrt{(TP_c+FP_c)(TP_c+FN_c)(TN_c+FP_c)(TN_c+FN_c)+\epsilon_{dr}}}")
    return where("1-" + class_mean(p["include_background"]) + ratio,
                 tp_definition(False) + r",\ TN_c=N-TP_c-FP_c-FN_c",
                 r"\text{a class with }FP_c=FN_c=0\text{ scores 0}", pooling(p["batch"]))


def wasserstein_dice(p: Params) -> str:
    if p["weighting_mode"] == "GDL":
        ratio = r"1-\frac{2\,TP+\epsilon}{\sum_i \alpha_{l_i}(2-W_i)+\epsilon}"
        alpha = r"\alpha_c=\frac{1}{\sum_i g_{ic}+1}"
    else:
        ratio = r"1-\frac{2\,TP+\epsilon}{2\,TP+\sum_i W_i+\epsilon}"
        alpha = r"\alpha=(0,1,\dots,1)"
    matrix = (r"M=1-I" if p["dist_matrix"] is None
              else r"M=\text{the given matrix divided by its largest entry}")
    return where(ratio, r"TP=\sum_i \alpha_{l_i}(1-W_i)", r"W_i=\sum_c M_{l_i c}\,s_{ic}", alpha, matrix,
                 r"l_i=\text{the label of pixel }i")


# ----------------------------------------------------------------------------------------------
# boundary losses
# ----------------------------------------------------------------------------------------------


def _boundary_classes(include_background: bool) -> str:
    return r"K=\{0,\dots,C-1\}" if include_background else r"K=\{1,\dots,C-1\}"


def boundary(p: Params) -> str:
    return where(r"L_{BD}=\frac{1}{|K|N}\sum_{c\in K}\sum_{i=1}^{N}\phi_G^c(i)\,s_{ic}",
                 r"\phi_G^c=\text{signed distance to the boundary of class }c\text{ (positive outside)}",
                 _boundary_classes(p["include_background"]))


HD_TERM = (r"\frac{1}{|K|N}\sum_{c\in K}\sum_{i=1}^{N}(s_{ic}-g_{ic})^2\left(d_G^c(i)^{\alpha}+d_S^c(i)^{\alpha}\right)")
HD_MAPS = r"d_G^c,\ d_S^c=\text{distance maps of }g_c\text{ and of }s_c>0.5"


def hausdorff_dt(p: Params) -> str:
    return where("L_{HD}=" + HD_TERM, HD_MAPS, _boundary_classes(p["include_background"]))


def log_hausdorff_dt(p: Params) -> str:
    return where(r"L_{logHD}=\log\Big(1+" + HD_TERM + r"\Big)", HD_MAPS, _boundary_classes(p["include_background"]),
                 r"\text{the log per sample}")


# ----------------------------------------------------------------------------------------------
# compound losses
# ----------------------------------------------------------------------------------------------


COMBO = (r"L_{Combo}=\frac{1}{C-1}\sum_{c=1}^{C-1}\Big[\alpha\Big(-\frac{1}{N}\sum_{i=1}^{N}\big(\beta\,g_{ic}"
         r"\log s_{ic}+(1-\beta)(1-g_{ic})\log(1-s_{ic})\big)\Big)+(1-\alpha)\Big(1-\frac{2\sum_i s_{ic}g_{ic}"
         r"+\epsilon}{\sum_i s_{ic}+\sum_i g_{ic}+\epsilon}\Big)\Big]")


def exp_log(p: Params) -> str:
    weighted = p["class_weights"] is not None
    ce = (r"w_{CE}\frac{1}{N}\sum_{i=1}^{N}\sum_{c=0}^{C-1}" + (r"w_c\," if weighted else "")
          + r"g_{ic}\big(-\log s_{ic}\big)^{\gamma}")
    return where(r"L_{ELL}=w_{Dice}\frac{1}{C-1}\sum_{c=1}^{C-1}\big(-\log Dice_c\big)^{\gamma}+" + ce,
                 r"Dice_c=\frac{2\sum_i s_{ic}g_{ic}+\epsilon}{\sum_i s_{ic}+\sum_i g_{ic}+\epsilon}",
                 vector("w", p["class_weights"], "") if weighted else "")


def dice_ce(p: Params) -> str:
    d = "1-" + class_mean(p["include_background"]) + dice_ratio(p["squared"])
    return where(r"L=\lambda_{Dice}\Big(" + d + r"\Big)+\lambda_{CE}\Big(" + ce_body() + r"\Big)",
                 "" if p["squared"] else tp_definition(False), pooling(p["batch"]) + r"\text{ (Dice term)}")


def region_size(p: Params) -> str:
    if p["penalty"] == "kl":
        penalty = r"R=\sum_{c=0}^{C-1}\tau_c\log\frac{\tau_c}{\hat\tau_c}"
    else:
        penalty = r"R=\frac{1}{C}\sum_{c=0}^{C-1}\big|\hat\tau_c-\tau_c\big|"
    tau = (r"\tau_c=\frac{1}{N}\sum_i g_{ic}\ \text{(the ground truth's proportions)}"
           if p["target_proportion"] is None else vector(r"\tau", _proportions(p["target_proportion"]), ""))
    return where(r"L=L_{CE}+\alpha R", penalty,
                 r"\hat\tau_c=\frac{1}{N}\sum_i\mathrm{softmax}\big(T\log s_i\big)_c", tau)


def _proportions(values: Sequence[float]) -> Sequence[float]:
    """One number is the foreground fraction of a binary case: ``(1 - f, f)``."""
    return (1.0 - values[0], values[0]) if len(values) == 1 else values


def _focal_term(include_background: bool) -> str:
    k = 0 if include_background else 1
    return (rf"\lambda_{{FL}}\Big(-\frac{{1}}{{N}}\sum_{{i=1}}^{{N}}\sum_{{c={k}}}^{{C-1}}(1-s_{{ic}})^{{\gamma}}"
            r"g_{ic}\log s_{ic}\Big)")


def dice_focal(p: Params) -> str:
    d = "1-" + class_mean(p["include_background"]) + dice_ratio(False)
    return where(r"L=\lambda_{Dice}\Big(" + d + r"\Big)+" + _focal_term(p["include_background"]),
                 tp_definition(False))


def generalized_dice_focal(p: Params) -> str:
    return where(r"L=\lambda_{GDL}\Big(" + gdl_body(p) + r"\Big)+" + _focal_term(p["include_background"]),
                 GDL_WEIGHTS, tp_definition(False))


# ----------------------------------------------------------------------------------------------
# topology losses
# ----------------------------------------------------------------------------------------------


def _cldice_parts(include_background: bool) -> tuple[str, ...]:
    k = class_sum(include_background)
    return (r"T_{prec}=\frac{" + k + r"\sum_i S^P_{ic}\,g_{ic}+\epsilon_{nr}}{" + k + r"\sum_i S^P_{ic}+\epsilon_{dr}}",
            r"T_{sens}=\frac{" + k + r"\sum_i S^G_{ic}\,s_{ic}+\epsilon_{nr}}{" + k + r"\sum_i S^G_{ic}+\epsilon_{dr}}",
            r"S^P,\ S^G=\text{soft skeletons of }s\text{ and }g")


CLDICE = r"1-\frac{2\,T_{prec}\,T_{sens}}{T_{prec}+T_{sens}+\epsilon_{hm}}"


def cldice(p: Params) -> str:
    return where("L_{clDice}=" + CLDICE, *_cldice_parts(p["include_background"]), r"\text{per sample}")


def dice_cldice(p: Params) -> str:
    d = (r"1-" + class_mean(p["include_background"])
         + r"\frac{2\,TP_c+\epsilon_{nr}}{\sum_i s_{ic}+\sum_i g_{ic}+\epsilon_{dr}}")
    return where(r"L=(1-\alpha)\Big(" + d + r"\Big)+\alpha\,L_{clDice}", "L_{clDice}=" + CLDICE,
                 *_cldice_parts(p["include_background"]), r"TP_c=\sum_i s_{ic}g_{ic}")


__all__ = [
    "COMBO",
    "asymmetric",
    "boundary",
    "cldice",
    "dice",
    "dice_ce",
    "dice_cldice",
    "dice_focal",
    "dpce",
    "exp_log",
    "focal",
    "focal_tversky",
    "generalized_dice",
    "generalized_dice_focal",
    "hausdorff_dt",
    "iou",
    "log_hausdorff_dt",
    "lovasz_hinge",
    "lovasz_softmax",
    "mcc",
    "penalty_gdl",
    "region_size",
    "sensitivity_specificity",
    "tversky",
    "wasserstein_dice",
    "wce",
]
