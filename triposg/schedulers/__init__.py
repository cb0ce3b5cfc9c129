"""Samplers for the latent flow model: rectified flow (the release) and the DDPM/EDM ablation alternatives,
all on one base (:class:`TripoSGSchedulerMixin`, which also states the training interface)."""

from .scheduling_ddpm import TripoSGDDPMScheduler
from .scheduling_edm import TripoSGEDMScheduler
from .scheduling_rectified_flow import RectifiedFlowScheduler
from .scheduling_utils import SchedulerOutput, TripoSGSchedulerMixin
from .timesteps import (
    logit_normal_timesteps,
    paper_t_to_sigma,
    resolution_dependent_shift,
    resolution_shift_factor,
    shift_sigmas,
    sigma_to_paper_t,
)

__all__ = [
    "RectifiedFlowScheduler",
    "SchedulerOutput",
    "TripoSGDDPMScheduler",
    "TripoSGEDMScheduler",
    "TripoSGSchedulerMixin",
    "logit_normal_timesteps",
    "paper_t_to_sigma",
    "resolution_dependent_shift",
    "resolution_shift_factor",
    "shift_sigmas",
    "sigma_to_paper_t",
]
