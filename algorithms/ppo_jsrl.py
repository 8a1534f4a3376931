# Jump-Start RL (Uchendu et al., 2022, arXiv 2204.02372) with the LLM teacher as its guide policy, on PPO, in
# CleanRL's single-file style: a baseline for ppo_teacher.py that uses the same teacher another way. Each episode the
# guide (the teacher acting alone, its actions sampled from its suggestions) acts for the first h steps and the
# student for the rest; h steps down a curriculum, from the guide's typical episode length to 0, each time the
# student's recent success reaches the threshold. Only the student's own steps enter PPO's loss; the student never
# reads the teacher's suggestions. Same network, environments and logging as ppo.py; what is not the algorithm
# (checkpoints, resume, signals, evaluation, the summary) is teacher_wrappers.training.
#
#   python algorithms/ppo_jsrl.py --env-id TeacherWrappers/SimpleDoorKey-v0 --planner recorded
import functools
import gc
import os
import random
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small networks on CPU: one thread is several times faster

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import tyro
from torch.distributions import Distribution
from torch.distributions.categorical import Categorical

from teacher_wrappers import TeacherWrapper, make_teacher_vector_env, training
from teacher_wrappers.optim import Adam
from teacher_wrappers.planners import PLANNERS, planner_kwargs
from teacher_wrappers.student import Agent, Minibatches, student_env, student_obs, student_obs_shape
from teacher_wrappers.teacher import teacher_actions


@dataclass
class Args:
    exp_name: str = os.path.basename(__file__)[: -len(".py")]
    """the name of this experiment"""
    seed: int = 1
    """seed of the experiment"""
    torch_deterministic: bool = True
    """if toggled, `torch.backends.cudnn.deterministic=True`"""
    cuda: bool = False
    """if toggled, cuda will be enabled when available (small networks run faster on the CPU)"""
    track: bool = False
    """if toggled, this experiment will be tracked with Weights and Biases"""
    wandb_project_name: str = "teacher-wrappers"
    """the wandb's project name"""
    wandb_entity: str | None = None
    """the entity (team) of wandb's project"""
    capture_video: bool = False
    """whether to capture videos of the agent performances (check out `videos` folder)"""
    run_dir: str = "runs"
    """folder that holds runs/<run_name>: TensorBoard events, checkpoints, summary.json"""
    run_name: str | None = None
    """name of the run folder (default: <env>__<exp_name>__<seed>__<time>)"""

    # Algorithm specific arguments
    env_id: str = "TeacherWrappers/SimpleDoorKey-v0"
    """the id of the environment (a TeacherWrappers task or a MiniGrid id)"""
    total_timesteps: int = 150_000
    """total timesteps of the experiments"""
    learning_rate: float = 5e-4
    """the learning rate of the optimizer"""
    num_envs: int = 16
    """the number of parallel game environments"""
    async_envs: bool = False
    """run the environments in worker processes, one per usable core (teacher_wrappers.vector.make_vector_env), instead of in this process"""
    num_steps: int = 32
    """the number of steps to run in each environment per policy rollout"""
    anneal_lr: bool = True
    """Toggle learning rate annealing for policy and value networks"""
    gamma: float = 0.99
    """the discount factor gamma"""
    gae_lambda: float = 0.95
    """the lambda for the general advantage estimation"""
    num_minibatches: int = 4
    """the number of mini-batches"""
    update_epochs: int = 3
    """the K epochs to update the policy"""
    norm_adv: bool = True
    """Toggles advantages normalization"""
    clip_coef: float = 0.2
    """the surrogate clipping coefficient"""
    clip_vloss: bool = True
    """Toggles whether or not to use a clipped loss for the value function"""
    ent_coef: float = 0.01
    """coefficient of the entropy"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping"""
    target_kl: float | None = None
    """the target KL divergence threshold"""
    greedy_fraction: float = 0.125
    """this fraction of the environments (rounded down: 2 of 16) act greedily (argmax) in the rollouts: where the
    argmax loops, PPO sees it and pushes it down, which sampled rollouts rarely show (their episodes are left out
    of charts/success_rate and of the curriculum's success rate)"""

    # The guide (the teacher) and its curriculum
    planner: str = "recorded"
    """the teacher's planner: recorded, rules, hf or openai (see teacher_wrappers.planners)"""
    model: str | None = None
    """LLM planners: the model (hf: folder, cached hub id, GGUF file or 'smollm2'; openai: model name)"""
    base_url: str | None = None
    """openai planner: the server's base URL, e.g. http://localhost:8000/v1"""
    recorded_path: str | None = None
    """recorded planner: a plan table file (default: the tables shipped with the package)"""
    planner_mode: str | None = None
    """hf/openai planners: 'sample' n answers or 'score' the admissible plans"""
    tokenizer: str | None = None
    """openai planner, score mode: the served model's tokenizer (a hub id in the local cache or a folder), to render
    its chat template on the client where the server does not (llama.cpp); default: the model name, where it is one"""
    teacher_eval_episodes: int = 20
    """episodes of the teacher acting alone before training: the lengths of its successful ones set the guide's steps
    at the first stage (--guide-quantile), its success rate the first bar"""
    guide_quantile: float = 1.0
    """the guide's steps at the first stage: this quantile of the lengths of its successful episodes acting alone
    (1: the longest, so that the student first takes over only the end of the longest episodes)"""
    guide_steps_start: int | None = None
    """the guide's steps at the first stage (default: measured, see --teacher-eval-episodes; if that is 0, the first
    bar is a success rate of 1)"""
    curriculum_stages: int = 10
    """the guide's steps go from the first stage's down to 0 in this many evenly spaced stages"""
    curriculum_window: int = 100
    """the combined policy's success rate (guide, then student) is averaged over this many sampled episodes of the
    current stage"""
    curriculum_tolerance: float = 0.05
    """the next stage begins when that rate reaches (1 - this) x the best rate so far (at first, the guide's own)"""
    switch: str = "fixed"
    """'fixed': the guide acts for exactly the stage's number of steps (JSRL's curriculum); 'random': for a number
    drawn uniformly from 0 to the stage's, each episode (JSRL's random switching, within the stage)"""

    # The agent's network
    student: str = "mlp"
    """the network: 'mlp' (feed-forward) or 'lstm' (an LSTM over the same features, its state carried through the
    episode; minibatches of whole environments: --num-envs a multiple of --num-minibatches)"""
    visits: bool = False
    """show the agent how often it has seen the current memory map this episode (teacher_wrappers.RevisitCount),
    so that a greedy policy can notice that it is going round in circles"""

    # Logging, evaluation and checkpoints
    success_window: int = 100
    """the success rate and return are averaged over the most recent episodes, this many"""
    eval_episodes: int = 100
    """evaluation episodes at the end (greedy, sampled, and the teacher alone), on fixed seeds"""
    eval_envs: int = 32
    """evaluation episodes played side by side (one batched forward per step)"""
    eval_seed: int = 1_000_000
    """first seed of the evaluation episodes (episode i uses eval_seed + i)"""
    eval_points: int = 10
    """greedy evaluations of the student, evenly spaced over the training, the final one included (the others on the
    first --eval-envs evaluation seeds): the summary's eval_curve (1: the final one only; 0: no curve)"""
    checkpoint_every: int = 50
    """write a checkpoint every this many iterations (0: only at the end and on Ctrl-C)"""
    resume: str | None = None
    """path of a checkpoint to continue from; the run goes on in that checkpoint's run folder. The checkpoint
    must come from this script with the same settings (see --resume-allow-budget-change)"""
    resume_allow_budget_change: bool = False
    """with --resume: let --total-timesteps differ from the checkpoint's (the learning rate anneals to the new budget)"""
    progress: bool = True
    """show a progress bar with SPS and success rate"""

    # to be filled in runtime
    batch_size: int = 0
    """the batch size (computed in runtime)"""
    minibatch_size: int = 0
    """the mini-batch size (computed in runtime)"""
    num_iterations: int = 0
    """the number of iterations (computed in runtime)"""



def make_env(env_id, idx, capture_video, run_name, visits=False):
    def thunk():
        if capture_video and idx == 0:
            env = student_env(env_id, visits, render_mode="rgb_array")
            return gym.wrappers.RecordVideo(env, f"videos/{run_name}")
        return student_env(env_id, visits)

    return thunk


class EpisodeLengths(gym.Wrapper):
    """Writes the length of every episode begun on a seed to `lengths[seed]` (unseeded restarts are left out)."""

    def __init__(self, env, lengths):
        super().__init__(env)
        self.lengths, self.episode_seed, self.steps = lengths, None, 0

    def reset(self, *, seed=None, options=None):
        self.episode_seed, self.steps = seed, 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.steps += 1
        if (terminated or truncated) and self.episode_seed is not None:
            self.lengths[self.episode_seed] = self.steps
        return obs, reward, terminated, truncated, info


def make_teacher_env(args, planner, lengths):
    """One environment with the teacher acting in it (its suggestions in obs["teacher_probs"])."""
    return EpisodeLengths(TeacherWrapper(make_env(args.env_id, 1, False, "", args.visits)(), planner=planner), lengths)


def teacher_alone(args, planner, seeds, stop=lambda: False):
    """The teacher acting alone (actions sampled from its suggestions), one episode per seed: returns and lengths."""
    rng, lengths = np.random.default_rng(args.seed), {}

    env_fns = [functools.partial(make_teacher_env, args, planner, lengths)] * args.eval_envs
    returns = training.play_episodes(env_fns, seeds, teacher_actions(rng), stop)
    return returns, np.array([lengths[int(seed)] for seed in seeds])


class Curriculum:
    """JSRL's curriculum of guide steps: `guide_steps` falls from `start` to 0 in `stages` evenly spaced stages (the
    same value twice counts once). The next stage begins when the combined policy's success rate over the last
    `window` sampled episodes of this stage reaches (1 - tolerance) x `best`, the best such rate so far (at first
    `bar`: the guide's own); a new stage starts a new window."""

    def __init__(self, start: int, stages: int, window: int, tolerance: float, bar: float):
        self.horizons = sorted({int(round(h)) for h in np.linspace(start, 0, max(stages, 1))} | {0}, reverse=True)
        self.window, self.tolerance = window, tolerance
        self.stage, self.best, self.successes = 0, bar, []

    @property
    def guide_steps(self) -> int:
        return self.horizons[self.stage]

    @property
    def success_rate(self) -> float | None:
        return float(np.mean(self.successes)) if self.successes else None

    def record(self, success: bool) -> None:
        """One episode of this stage in which the student acted."""
        self.successes = (self.successes + [bool(success)])[-self.window:]

    def update(self) -> bool:
        """Begins the next stage if the student's rate reached the bar (True then)."""
        if self.guide_steps == 0 or len(self.successes) < self.window:
            return False
        rate = self.success_rate
        if rate < (1 - self.tolerance) * self.best:
            return False
        self.stage, self.best, self.successes = self.stage + 1, max(self.best, rate), []
        return True

    def state_dict(self) -> dict:
        return {"horizons": list(self.horizons), "stage": self.stage, "best": self.best,
                "successes": list(self.successes)}

    def load_state_dict(self, state: dict) -> None:
        self.horizons, self.stage, self.best = list(state["horizons"]), state["stage"], state["best"]
        self.successes = list(state["successes"])


if __name__ == "__main__":
    args = tyro.cli(Args)
    training.check_choice(args.planner, PLANNERS, "planner", "planners")
    training.check_choice(args.switch, ("random", "fixed"), "--switch")
    training.check_args(args)
    if args.curriculum_stages < 1 or args.curriculum_window < 1:
        training.fail("--curriculum-stages and --curriculum-window must be at least 1")
    if args.guide_steps_start is None and args.teacher_eval_episodes < 1:
        training.fail("--teacher-eval-episodes must be at least 1 unless --guide-steps-start is given")
    if not 0 <= args.curriculum_tolerance < 1:
        training.fail(f"--curriculum-tolerance must be at least 0 and below 1, got {args.curriculum_tolerance}")
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    # the run folder, TensorBoard, checkpoints, Ctrl-C and crashes; refuses a --resume checkpoint that does not fit
    run = training.Run(args, script=os.path.basename(__file__), curves=("guide_steps", "llm_calls"))
    greedy_envs = run.greedy_envs  # the first ones act greedily

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    Distribution.set_default_validate_args(False)  # argument checks cost more than the tiny network
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # env setup: Gymnasium 1.x with same-step autoreset, so the obs after a done starts the next episode
    # (with --async-envs, a planner that costs no LLM call runs in every sub-env process: see make_teacher_vector_env)
    env_fns = [make_env(args.env_id, i, args.capture_video, run.name, args.visits) for i in range(args.num_envs)]
    try:
        envs = make_teacher_vector_env(env_fns, planner=args.planner, planner_kwargs=planner_kwargs(args),
                                       asynchronous=args.async_envs,
                                       autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    except (ValueError, TypeError, ConnectionError, OSError, RuntimeError) as error:
        training.fail(f"cannot build the {args.planner!r} teacher: {error}")
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"
    n_actions = int(envs.single_action_space.n)

    obs_shape = student_obs_shape(envs.single_observation_space)

    recurrent = args.student == "lstm"
    agent = Agent.for_space(envs.single_observation_space, n_actions, recurrent=recurrent).to(device)
    optimizer = Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)  # fused: one kernel per step
    # the guide acting alone sets the curriculum: the first stage hands the student the end of the guide's longest
    # successful episodes (--guide-quantile); its success rate is the first bar
    guide_return, guide_success, guide_length = None, None, args.guide_steps_start
    if not run.resumed and args.teacher_eval_episodes > 0:
        seeds = args.eval_seed + 10_000 + np.arange(args.teacher_eval_episodes)
        returns, lengths = teacher_alone(args, envs.teacher.planner, seeds)
        guide_return, guide_success = float(np.mean(returns)), float(np.mean(returns > 0))
        if guide_length is None:
            guide_length = int(np.quantile(lengths[returns > 0], args.guide_quantile)) if guide_success > 0 else 0
    curriculum = Curriculum(guide_length or 0, args.curriculum_stages, args.curriculum_window,
                            args.curriculum_tolerance, bar=1.0 if guide_success is None else guide_success)
    switch_rng = np.random.default_rng(args.seed)  # the guide's steps of each episode (--switch random)

    def draw_guide_steps(count):
        stage_steps = curriculum.guide_steps
        return switch_rng.integers(0, stage_steps + 1, count) if args.switch == "random" else np.full(count, stage_steps)

    episode_guide_steps = draw_guide_steps(args.num_envs)  # the guide's steps in each env's current episode
    episode_stage = np.zeros(args.num_envs, dtype=int)  # the stage each env's episode began in

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape, dtype=torch.uint8).to(device)
    actions = torch.zeros((args.num_steps, args.num_envs)).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    values = torch.zeros((args.num_steps, args.num_envs)).to(device)
    students = torch.zeros((args.num_steps, args.num_envs), dtype=torch.bool).to(device)  # the student acted

    # TRY NOT TO MODIFY: start the game (or continue a checkpoint exactly, the curriculum and LSTM state included)
    def checkpoint_state():  # this script's own part of a checkpoint (copies: the arrays change later)
        return {"curriculum": curriculum.state_dict(), "episode_stage": episode_stage.copy(), "guide_return": guide_return, "guide_success": guide_success,
                "guide_length": guide_length, "lstm_state": next_lstm_state,
                "episode_guide_steps": episode_guide_steps.copy(), "switch_rng": switch_rng.bit_generator.state}

    next_lstm_state = agent.initial_state(args.num_envs) if recurrent else None
    next_obs_dict, next_done = run.start(envs, {"agent": agent, "optimizer": optimizer}, checkpoint_state,
                                         eval_env=make_env(args.env_id, 1, False, "", args.visits))
    if run.resumed:  # this script's own state, as the checkpoint left it
        curriculum.load_state_dict(run.state["curriculum"])
        episode_guide_steps = run.state["episode_guide_steps"]
        switch_rng.bit_generator.state = run.state["switch_rng"]
        episode_stage = run.state["episode_stage"]
        guide_return, guide_success, guide_length = (run.state[key] for key in ("guide_return", "guide_success",
                                                                                "guide_length"))
        if recurrent:
            next_lstm_state = run.state["lstm_state"].to(device)
    next_obs = torch.as_tensor(student_obs(next_obs_dict)).to(device)
    next_teacher = torch.as_tensor(next_obs_dict["teacher_probs"]).to(device)
    next_done = next_done.to(device)
    writer = run.writer

    for iteration in run.iterations():
        curriculum.update()  # the next stage, if the student's recent success reached the bar
        guide_steps = curriculum.guide_steps
        envs.teacher_enabled = guide_steps > 0  # a guide that no longer acts costs nothing
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            lrnow = frac * args.learning_rate
            optimizer.param_groups[0]["lr"] = lrnow
        initial_lstm_state = next_lstm_state.clone() if recurrent else None  # the update starts its sequences here

        for step in range(0, args.num_steps):
            obs[step] = next_obs
            dones[step] = next_done

            # ALGO LOGIC: action logic
            with torch.inference_mode():
                if recurrent:
                    action, logprob, _, value, logits, _, next_lstm_state = agent.get_action_and_value(
                        next_obs, next_lstm_state, next_done)
                else:
                    action, logprob, _, value, logits, _ = agent.get_action_and_value(next_obs)
                if greedy_envs:
                    action[:greedy_envs] = logits[:greedy_envs].argmax(-1)
                # the guide takes the first guide_steps steps of each episode: the teacher acting alone
                guided = torch.as_tensor(run.episode_lengths < episode_guide_steps).to(device)
                if guided.any():
                    action[guided] = torch.multinomial(next_teacher[guided], 1).squeeze(1)
                logprob = Categorical(logits=logits).log_prob(action)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob
            students[step] = ~guided

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs_dict, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done_np = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).to(device).view(-1)
            next_obs = torch.as_tensor(student_obs(next_obs_dict)).to(device)
            next_teacher = torch.as_tensor(next_obs_dict["teacher_probs"]).to(device)
            next_done = torch.Tensor(next_done_np).to(device)
            # episode returns, success rate, TensorBoard; the curriculum counts the sampled episodes of its stage in
            # which the student acted
            for i, success in run.record_step(reward, next_done_np):
                if episode_stage[i] == curriculum.stage and i >= greedy_envs:
                    curriculum.record(success)
                episode_stage[i] = curriculum.stage
                episode_guide_steps[i] = draw_guide_steps(1)[0]
        global_step = run.global_step

        # bootstrap value if not done
        with torch.no_grad():
            next_value = (agent.get_value(next_obs, next_lstm_state, next_done) if recurrent
                          else agent.get_value(next_obs)).reshape(1, -1)
            advantages = torch.zeros_like(rewards).to(device)
            lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    nextnonterminal = 1.0 - next_done
                    nextvalues = next_value
                else:
                    nextnonterminal = 1.0 - dones[t + 1]
                    nextvalues = values[t + 1]
                delta = rewards[t] + args.gamma * nextvalues * nextnonterminal - values[t]
                advantages[t] = lastgaelam = delta + args.gamma * args.gae_lambda * nextnonterminal * lastgaelam
            returns = advantages + values

        # flatten the batch
        b_obs = obs.reshape((-1,) + obs_shape)
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape(-1)
        b_dones = dones.reshape(-1)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)
        b_students = students.reshape(-1)

        # Optimizing the policy and value network: minibatches of samples or, for the LSTM, of whole envs
        minibatches = Minibatches(args.num_steps, args.num_envs, args.num_minibatches, whole_envs=recurrent)
        clipfracs = []
        v_loss = pg_loss = entropy_loss = old_approx_kl = approx_kl = torch.zeros(())  # no student step: no update
        for epoch in range(args.update_epochs):
            for mb_inds, mb_envs in minibatches.epoch():
                # the LSTM runs these envs' sequences again, from the rollout's initial state
                sequences = (initial_lstm_state[:, mb_envs], b_dones[mb_inds]) if recurrent else ()
                _, newlogprob, entropy, newvalue, *_ = agent.get_action_and_value(
                    b_obs[mb_inds], *sequences, b_actions.long()[mb_inds])
                # only the student's own steps enter the loss: the guide's actions are not the student's policy
                own = b_students[mb_inds]
                if not own.any():
                    continue
                mb_inds, newlogprob, entropy = mb_inds[own.cpu().numpy()], newlogprob[own], entropy[own]
                newvalue = newvalue[own]
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv and len(mb_advantages) > 1:
                    mb_advantages = (mb_advantages - mb_advantages.mean()) / (mb_advantages.std() + 1e-8)

                # Policy loss
                pg_loss1 = -mb_advantages * ratio
                pg_loss2 = -mb_advantages * torch.clamp(ratio, 1 - args.clip_coef, 1 + args.clip_coef)
                pg_loss = torch.max(pg_loss1, pg_loss2).mean()

                # Value loss
                newvalue = newvalue.view(-1)
                if args.clip_vloss:
                    v_loss_unclipped = (newvalue - b_returns[mb_inds]) ** 2
                    v_clipped = b_values[mb_inds] + torch.clamp(
                        newvalue - b_values[mb_inds],
                        -args.clip_coef,
                        args.clip_coef,
                    )
                    v_loss_clipped = (v_clipped - b_returns[mb_inds]) ** 2
                    v_loss_max = torch.max(v_loss_unclipped, v_loss_clipped)
                    v_loss = 0.5 * v_loss_max.mean()
                else:
                    v_loss = 0.5 * ((newvalue - b_returns[mb_inds]) ** 2).mean()

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        y_pred, y_true = b_values[b_students].cpu().numpy(), b_returns[b_students].cpu().numpy()
        var_y = np.var(y_true) if len(y_true) else 0
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        writer.add_scalar("jsrl/guide_steps", guide_steps, global_step)
        writer.add_scalar("jsrl/stage", curriculum.stage, global_step)
        writer.add_scalar("jsrl/student_step_fraction", b_students.float().mean().item(), global_step)
        if curriculum.success_rate is not None:
            writer.add_scalar("jsrl/curriculum_success_rate", curriculum.success_rate, global_step)
        stats = envs.teacher_stats()  # the training teacher's own counters
        for key in ("queries", "cache_hits", "llm_calls_per_1000_steps", "unparsed_steps", "loop_breaks"):
            writer.add_scalar(f"teacher/{key}", stats[key], global_step)
        # the LLM bill: every live answer, request, token and second of the run, whichever teacher asked (the guide's
        # measurement before training included): the shared planner counts them
        bill = envs.teacher.planner.bill()
        for key, value in bill.items():
            writer.add_scalar(f"teacher/{key}", value, global_step)
        # success rate, SPS, progress bar, checkpoint
        run.end_iteration(iteration, next_obs_dict, next_done,
                          curves={"guide_steps": guide_steps, "llm_calls": bill["llm_calls"]}, h=guide_steps)

    run.end_training()  # the final checkpoint; on Ctrl-C the run stops here
    with run.final_evaluation():
        greedy = run.evaluate(agent, make_env(args.env_id, 1, False, "", args.visits), greedy=True)
        sampled = run.evaluate(agent, make_env(args.env_id, 1, False, "", args.visits), greedy=False)
        # the teacher alone on the same seeds: student / teacher return above 1 means the student surpassed it
        teacher_eval, _ = teacher_alone(args, envs.teacher.planner, run.eval_seeds(), stop=lambda: run.interrupted)
    curve = run.curve
    guide_off = next((frames for frames, h in zip(curve["frames"], curve["guide_steps"]) if h == 0), None)
    run.write_summary(
        "ppo_jsrl", greedy, sampled, planner=args.planner, teacher_alone_return=guide_return,
        teacher_alone_success_rate=guide_success, guide_steps_start=curriculum.horizons[0],
        guide_steps_final=curriculum.guide_steps, curriculum_stage=curriculum.stage, frames_to_guide_off=guide_off,
        teacher_eval_success_rate=float(np.mean(teacher_eval > 0)),
        teacher_eval_mean_return=float(np.mean(teacher_eval)), teacher_stats=envs.teacher_stats(),
        **envs.teacher.planner.bill())  # the whole run's LLM bill
    gc.freeze()  # the run is over: at exit the garbage collector need not go through every object (0.8 s)
