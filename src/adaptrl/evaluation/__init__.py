"""The meta-test protocol, its statistics, the classic comparison tables and stream scoring."""

from adaptrl.evaluation.protocol import (
                                         adaptation_curve,
                                         adaptation_curves,
                                         gradient_curve,
                                         oracle_curve,
                                         trial_curve,
)
from adaptrl.evaluation.statistics import curve_summary, mean_ci95, paired_difference

__all__ = ["adaptation_curve", "adaptation_curves", "curve_summary", "gradient_curve",
           "mean_ci95", "oracle_curve", "paired_difference", "trial_curve"]
