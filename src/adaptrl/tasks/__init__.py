"""Task families and their batched environments (the bottom layer of adaptrl)."""

from adaptrl.tasks.adapters import register_adapter_families
from adaptrl.tasks.bandits import BanditBernoulli
from adaptrl.tasks.base import SPLITS, BatchedEnv, Split, StepResult, TaskFamily, Tasks
from adaptrl.tasks.cartpole import CartPolePhysics
from adaptrl.tasks.catch_grid import CatchGrid
from adaptrl.tasks.catcher import Catcher
from adaptrl.tasks.checker import check_task_family
from adaptrl.tasks.flappy import FlappyBird
from adaptrl.tasks.navigation import Navigation2D
from adaptrl.tasks.pendulum import PendulumPhysics
from adaptrl.tasks.registry import make, register, registered
from adaptrl.tasks.splits import sample_split, split_of
from adaptrl.tasks.tabular_mdp import TabularMDP
from adaptrl.tasks.tracking import Tracking2D

register("navigation-2d", Navigation2D,
         "point robot reaching a goal in [-0.5, 0.5]^2 (MAML paper, §5.3)")
register("bandit-bernoulli", BanditBernoulli,
         "k-armed Bernoulli bandits, p_i ~ U[0, 1]; one pull per episode (RL², §4.1)")
register("tabular-mdp", TabularMDP,
         "random 10-state, 5-action MDPs, Dirichlet transitions, N(mu, 1) rewards (RL², §4.2)")
register("tracking-2d", Tracking2D,
         "follow 1-3 moving targets (bounce / circle / zig-zag) around circular obstacles")
register("cartpole-physics", CartPolePhysics,
         "CartPole-v1 with pole length, masses, gravity and force varied 0.5x..2x")
register("pendulum-physics", PendulumPhysics,
         "Pendulum-v1 with length, mass, gravity and damping varied")
register("catcher", Catcher,
         "PLE's Catcher (Tasfi 2016) with fruit speed, paddle speed and width varied; "
         "3 lives, +1 catch, -1 miss (MER's continual Catcher)")
register("flappy-bird", FlappyBird,
         "PLE's Flappy Bird (Tasfi 2016) with pipe gap, gravity and flap strength varied; "
         "+1 per pipe, -5 on a crash (MER's narrowing gap)")
register("catch-grid", CatchGrid,
         "bsuite's 10 x 5 Catch (Optim4RL's learned-optimizer testbed) with a sideways "
         "ball drift varied per task")
register_adapter_families()  # MuJoCo / Meta-World families (imported lazily, extras)

__all__ = ["SPLITS", "BanditBernoulli", "BatchedEnv", "CartPolePhysics", "CatchGrid", "Catcher",
           "FlappyBird", "Navigation2D", "PendulumPhysics", "Split", "StepResult", "TabularMDP",
           "TaskFamily", "Tasks", "Tracking2D", "check_task_family", "make", "register",
           "registered", "sample_split", "split_of"]
