# PPO with an LLM policy teacher (Zhou et al., 2023, arXiv 2311.13373), in CleanRL's single-file style.
# The student acts; the teacher only supplies targets. Loss = PPO + lambda_t * KL(teacher || student)
# on the states the student visits (or of its own successful episodes), with lambda_t decaying so that
# reward takes over. The student network is teacher_wrappers.student; what is not the algorithm
# (checkpoints, resume, signals, evaluation, the summary) is teacher_wrappers.training.
#
#   python algorithms/ppo_teacher.py --env-id TeacherWrappers/SimpleDoorKey-v0 --planner recorded
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
from teacher_wrappers.distillation import (
    SCHEDULES,
    SuccessBuffer,
    SuccessEpisodes,
    distillation_target,
    kl_to_teacher,
    make_schedule,
    without_loops,
)
from teacher_wrappers.optim import Adam
from teacher_wrappers.planners import PLANNERS, planner_kwargs
from teacher_wrappers.student import Agent, Minibatches, student_env, student_obs, student_obs_shape
from teacher_wrappers.teacher import teacher_actions

DISTILL_FROM = ("on-policy", "successes", "demos")


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
    """run the environments in worker processes, one per usable core (teacher_wrappers.grouped.make_vector_env), instead of in this process"""
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
    ent_coef: float = 0.0
    """coefficient of the entropy (0: the teacher's term already keeps the early policy spread; without a bonus the
    policy sharpens where a wasted step costs little, so the greedy student loops less: ppo.py's 0.01 gave ColoredDoorKey
    greedy 0.84 against 0.88, benchmarks/results/students.md)"""
    vf_coef: float = 0.5
    """coefficient of the value function"""
    max_grad_norm: float = 0.5
    """the maximum norm for the gradient clipping"""
    target_kl: float | None = None
    """the target KL divergence threshold"""

    # Teacher specific arguments
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
    schedule: str = "adaptive"
    """how lambda, the weight of the distillation loss, decays: adaptive, reference or linear"""
    lambda_start: float = 10.0
    """lambda at the first iteration"""
    lambda_decay: float = 0.005
    """reference schedule: lambda falls by this much per iteration"""
    lambda_floor: float = 0.1
    """reference schedule: lambda never falls below this while the teacher is on"""
    teacher_off_iteration: int = 1000
    """reference schedule: the teacher is switched off (lambda = 0) from this iteration on"""
    linear_frames: int = 100_000
    """linear and adaptive schedules: lambda reaches 0 after this many frames"""
    teacher_eval_episodes: int = 20
    """adaptive schedule: episodes of the teacher acting alone, to measure its return"""
    distill_from: str = "successes"
    """what the student imitates: 'on-policy', the teacher's suggestions on every state of the rollout;
    'successes', the teacher's suggestions on states of the student's own successful episodes (a replay buffer);
    'demos', the actions taken in successful episodes, the teacher's own (acting alone before training) and then
    the student's"""
    demo_episodes: int = 200
    """distill_from demos: episodes of the teacher acting alone before training; its successful ones seed the
    buffer (these env steps are not counted in the frame budget; the summary reports them)"""
    success_buffer_size: int = 20_000
    """distill_from successes: states kept (the oldest go first)"""
    success_buffer_min: int = 1_024
    """distill_from successes: on-policy states are used until the buffer holds this many"""
    self_imitation: float = 0.5
    """distill_from successes: once the teacher is off (lambda 0), the buffer goes on taking the student's own
    successful episodes, loops cut out, with the actions it took as targets, and is imitated with this weight:
    what distillation taught is kept (0: the buffer is used only while the teacher is on)"""
    q_filter: bool = False
    """trust the teacher only where a learned Q agrees: its actions valued below the student's own choice (by more
    than q_filter_margin) are dropped from the target (after Nair et al. 2018's Q-filter)"""
    q_filter_margin: float = 0.05
    """q_filter: how much lower (in return) than the student's choice a suggestion may be valued and still be trusted"""

    greedy_fraction: float = 0.125
    """this fraction of the environments (rounded down: 2 of 16) act greedily (argmax) in the rollouts: where the
    argmax loops, PPO sees it and pushes it down, which sampled rollouts rarely show (their episodes are left out
    of charts/success_rate)"""

    # The student's network
    student: str = "mlp"
    """the network: 'mlp' (feed-forward) or 'lstm' (an LSTM over the same features, its state carried through the
    episode; minibatches of whole environments: --num-envs a multiple of --num-minibatches; the success buffer
    keeps whole episodes)"""
    visits: bool = False
    """show the student how often it has seen the current memory map this episode (teacher_wrappers.RevisitCount),
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


def make_teacher_env(args, planner):
    """One environment with the teacher acting in it (its suggestions in obs["teacher_probs"])."""
    return TeacherWrapper(make_env(args.env_id, 1, False, "", args.visits)(), planner=planner)


def teacher_demos(args, planner):
    """The teacher's successful episodes acting alone, each (student observations, actions taken), and the env
    steps it took. Imitating what the teacher did when it succeeded, not all it suggests, leaves its mistakes out."""
    env = make_teacher_env(args, planner)
    rng = np.random.default_rng(args.seed)
    demos, steps = [], 0
    for episode in range(args.demo_episodes):
        obs, _ = env.reset(seed=args.eval_seed + 20_000 + episode)  # clear of the evaluation seeds
        trajectory, done = [], False
        while not done:
            probs = obs["teacher_probs"].astype(np.float64)
            action = int(rng.choice(len(probs), p=probs / probs.sum()))
            trajectory.append((student_obs(obs), action))
            obs, reward, terminated, truncated, _ = env.step(action)
            done, steps = terminated or truncated, steps + 1
        if reward > 0:
            states, actions = zip(*trajectory)
            demos.append((np.array(states, dtype=np.uint8), np.array(actions, dtype=np.int64)))
    env.close()
    return demos, steps


def teacher_alone_returns(args, planner, seeds, stop=lambda: False):
    """Returns of the teacher acting alone (actions sampled from its suggestions), one episode per seed."""
    rng = np.random.default_rng(args.seed)

    env_fns = [functools.partial(make_teacher_env, args, planner)] * args.eval_envs
    return training.play_episodes(env_fns, seeds, teacher_actions(rng), stop)


if __name__ == "__main__":
    args = tyro.cli(Args)
    training.check_choice(args.planner, PLANNERS, "planner", "planners")
    training.check_choice(args.schedule, SCHEDULES, "schedule", "schedules")
    training.check_choice(args.distill_from, DISTILL_FROM, "--distill-from")
    training.check_args(args)
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    # the run folder, TensorBoard, checkpoints, Ctrl-C and crashes; refuses a --resume checkpoint that does not fit
    run = training.Run(args, script=os.path.basename(__file__), curves=("lambda", "llm_calls"))
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
    obs_shape = student_obs_shape(envs.single_observation_space)
    n_actions = int(envs.single_action_space.n)

    recurrent = args.student == "lstm"
    agent = Agent.for_space(envs.single_observation_space, n_actions, q_head=args.q_filter,
                            recurrent=recurrent).to(device)
    optimizer = Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)  # fused: one kernel per step
    schedule = make_schedule(args.schedule, args.lambda_start, args.lambda_decay, args.lambda_floor,
                             args.teacher_off_iteration, args.linear_frames)
    teacher_return = 0.0
    if args.schedule == "adaptive" and not run.resumed:  # the teacher acting alone sets the bar
        seeds = args.eval_seed + 10_000 + np.arange(args.teacher_eval_episodes)
        teacher_return = float(np.mean(teacher_alone_returns(args, envs.teacher.planner, seeds)))

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape, dtype=torch.uint8).to(device)
    teacher_probs = torch.zeros((args.num_steps, args.num_envs, n_actions)).to(device)
    actions = torch.zeros((args.num_steps, args.num_envs)).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    values = torch.zeros((args.num_steps, args.num_envs)).to(device)
    # the LSTM is run over whole episodes from their start: the buffer keeps episodes, not states
    buffer = SuccessEpisodes if recurrent else SuccessBuffer
    successes = None if args.distill_from == "on-policy" else buffer(args.success_buffer_size, obs_shape, n_actions)
    episode_states = [[] for _ in range(args.num_envs)]  # (obs, imitation target) of each env's current episode
    demo_frames = 0
    if args.distill_from == "demos" and not run.resumed:
        demos, demo_frames = teacher_demos(args, envs.teacher.planner)
        for demo_states, demo_actions in demos:
            successes.add(demo_states, np.eye(n_actions, dtype=np.float32)[demo_actions])

    # TRY NOT TO MODIFY: start the game (or continue a checkpoint exactly)
    def checkpoint_state():  # this script's own part of a checkpoint (copies: the buffer and episodes change later)
        return {"teacher_return": teacher_return, "demo_frames": demo_frames,
                "successes": None if successes is None else successes.state_dict(),
                "episode_states": [list(states) for states in episode_states], "lstm_state": next_lstm_state}

    next_lstm_state = agent.initial_state(args.num_envs) if recurrent else None
    next_obs_dict, next_done = run.start(envs, {"agent": agent, "optimizer": optimizer}, checkpoint_state,
                                         eval_env=make_env(args.env_id, 1, False, "", args.visits))
    if run.resumed:  # this script's own state, as the checkpoint left it
        teacher_return, demo_frames = run.state["teacher_return"], run.state["demo_frames"]
        episode_states = run.state["episode_states"]
        if successes is not None:
            successes.load_state_dict(run.state["successes"])
        if recurrent:
            next_lstm_state = run.state["lstm_state"].to(device)
    next_obs_np, next_teacher_np = student_obs(next_obs_dict), next_obs_dict["teacher_probs"]
    next_obs, next_teacher = torch.as_tensor(next_obs_np).to(device), torch.as_tensor(next_teacher_np).to(device)
    next_done = next_done.to(device)
    one_hots = np.eye(n_actions, dtype=np.float32)  # the imitation target where the target is the action taken
    writer = run.writer
    # everything built so far (torch, the envs, the teacher's warm-up) lives to the end: the garbage collector's full
    # passes skip it (else each one walks all of it, ~0.1 s once the teacher's memos have grown)
    gc.freeze()

    for iteration in run.iterations():
        global_step = run.global_step
        lam = schedule(iteration, global_step, run.mean_return(at_least=10), teacher_return)
        envs.teacher_enabled = lam > 0  # a switched-off teacher costs nothing
        # Annealing the rate if instructed to do so.
        if args.anneal_lr:
            frac = 1.0 - (iteration - 1.0) / args.num_iterations
            lrnow = frac * args.learning_rate
            optimizer.param_groups[0]["lr"] = lrnow
        initial_lstm_state = next_lstm_state.clone() if recurrent else None  # the update starts its sequences here

        for step in range(0, args.num_steps):
            obs[step] = next_obs
            teacher_probs[step] = next_teacher
            step_obs_np, step_teacher_np = next_obs_np, next_teacher_np  # the same, as NumPy arrays
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
                    logprob = Categorical(logits=logits).log_prob(action)
                values[step] = value.flatten()
            actions[step] = action
            logprobs[step] = logprob

            # TRY NOT TO MODIFY: execute the game and log data.
            action_np = action.cpu().numpy()
            next_obs_dict, reward, terminations, truncations, infos = envs.step(action_np)
            next_done_np = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).to(device).view(-1)
            if successes is not None and (lam > 0 or recurrent or args.self_imitation > 0):
                # the target: the teacher's suggestion there, or (demos, or where the teacher was not asked) the
                # action the student took (in NumPy: the buffer's arrays; a few small torch calls cost more)
                targets = one_hots[action_np]
                if args.distill_from != "demos":
                    targets = np.where(step_teacher_np.sum(-1, keepdims=True) > 0, step_teacher_np, targets)
                # one copy per step (the environments' arrays may be reused); each env keeps its row
                step_obs, step_targets = step_obs_np.copy(), np.asarray(targets, dtype=np.float32)
                for i in range(args.num_envs):
                    episode_states[i].append((step_obs[i], step_targets[i]))
            next_obs_np, next_teacher_np = student_obs(next_obs_dict), next_obs_dict["teacher_probs"]
            next_obs, next_teacher = torch.as_tensor(next_obs_np).to(device), torch.as_tensor(next_teacher_np).to(device)
            next_done = torch.Tensor(next_done_np).to(device)
            # episode returns, success rate, TensorBoard; the states of successful episodes go to the buffer
            for i, success in run.record_step(reward, next_done_np):
                if success and episode_states[i]:
                    states, suggestions = (np.stack(part) for part in zip(*episode_states[i]))
                    # the LSTM needs whole episodes; a feed-forward student imitates the path without its loops
                    successes.add(*((states, suggestions) if recurrent else without_loops(states, suggestions)))
                episode_states[i] = []
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
        b_teacher = teacher_probs.reshape(-1, n_actions)
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape(-1)
        b_dones = dones.reshape(-1)
        b_advantages = advantages.reshape(-1)
        b_returns = returns.reshape(-1)
        b_values = values.reshape(-1)

        # Optimizing the policy and value network: minibatches of samples or, for the LSTM, of whole envs
        minibatches = Minibatches(args.num_steps, args.num_envs, args.num_minibatches, whole_envs=recurrent)
        clipfracs, teacher_kls, agreements = [], [], []
        for epoch in range(args.update_epochs):
            for mb_inds, mb_envs in minibatches.epoch():
                # Distillation: KL(teacher || student) on the states the student visited, or on states of its own
                # successful episodes once the buffer holds enough of them (then, once the teacher is off, with
                # the weight of --self-imitation); a feed-forward student runs both batches in one forward pass
                weight = lam if lam > 0 else args.self_imitation * (successes is not None)
                from_buffer = weight > 0 and successes is not None and successes.size >= args.success_buffer_min
                kl_obs = None
                if from_buffer:
                    if recurrent:  # whole episodes, each run from the zero state it began with
                        kl_obs, mb_teacher, lengths = successes.sample(args.minibatch_size, device)
                    else:
                        kl_obs, mb_teacher = successes.sample(args.minibatch_size, device)
                else:
                    mb_teacher = b_teacher[mb_inds]
                if recurrent:  # the LSTM runs these envs' sequences again, from the rollout's initial state
                    _, newlogprob, entropy, newvalue, logits, hidden, _ = agent.get_action_and_value(
                        b_obs[mb_inds], initial_lstm_state[:, mb_envs], b_dones[mb_inds], b_actions.long()[mb_inds])
                    kl_hidden = agent.episode_states(kl_obs, lengths) if from_buffer else hidden
                else:
                    both = b_obs[mb_inds] if kl_obs is None else torch.cat([b_obs[mb_inds], kl_obs])
                    hidden, kl_hidden = agent.features(both).split([len(mb_inds), len(both) - len(mb_inds)])
                    _, newlogprob, entropy, newvalue, logits, hidden = agent.heads(hidden, b_actions.long()[mb_inds])
                    kl_hidden = kl_hidden if from_buffer else hidden
                kl_logits = agent.actor(kl_hidden) if from_buffer else logits
                logratio = newlogprob - b_logprobs[mb_inds]
                ratio = logratio.exp()

                with torch.no_grad():
                    # calculate approx_kl http://joschu.net/blog/kl-approx.html
                    old_approx_kl = (-logratio).mean()
                    approx_kl = ((ratio - 1) - logratio).mean()
                    clipfracs += [((ratio - 1.0).abs() > args.clip_coef).float().mean().item()]

                mb_advantages = b_advantages[mb_inds]
                if args.norm_adv:
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

                # Q(s, a_taken) regressed on the return, for the Q-filter
                q_loss = torch.zeros((), device=device)
                if agent.q is not None:
                    q_taken = agent.q(hidden).gather(1, b_actions.long()[mb_inds, None]).squeeze(1)
                    q_loss = 0.5 * ((q_taken - b_returns[mb_inds]) ** 2).mean()

                target = distillation_target(mb_teacher, kl_logits, None if agent.q is None else agent.q(kl_hidden),
                                             args.q_filter_margin)
                teacher_kl = kl_to_teacher(kl_logits, target)
                with torch.no_grad():
                    teacher_kls.append(teacher_kl.item())
                    agreements.append((kl_logits.argmax(-1) == mb_teacher.argmax(-1)).float().mean().item())

                entropy_loss = entropy.mean()
                loss = (pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef + q_loss * args.vf_coef
                        + weight * teacher_kl)

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(agent.parameters(), args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
        var_y = np.var(y_true)
        explained_var = np.nan if var_y == 0 else 1 - np.var(y_true - y_pred) / var_y
        agreement = float(np.mean(agreements))  # student argmax == teacher argmax, over the iteration's updates

        # TRY NOT TO MODIFY: record rewards for plotting purposes
        writer.add_scalar("charts/learning_rate", optimizer.param_groups[0]["lr"], global_step)
        writer.add_scalar("losses/value_loss", v_loss.item(), global_step)
        writer.add_scalar("losses/policy_loss", pg_loss.item(), global_step)
        writer.add_scalar("losses/entropy", entropy_loss.item(), global_step)
        writer.add_scalar("losses/old_approx_kl", old_approx_kl.item(), global_step)
        writer.add_scalar("losses/approx_kl", approx_kl.item(), global_step)
        writer.add_scalar("losses/clipfrac", np.mean(clipfracs), global_step)
        writer.add_scalar("losses/explained_variance", explained_var, global_step)
        writer.add_scalar("teacher/lambda", lam, global_step)
        writer.add_scalar("teacher/kl", float(np.mean(teacher_kls)), global_step)
        writer.add_scalar("teacher/agreement", agreement, global_step)
        if successes is not None:
            writer.add_scalar("teacher/success_buffer_states", successes.size, global_step)
        stats = envs.teacher_stats()  # the training teacher's own counters
        for key in ("queries", "cache_hits", "llm_calls_per_1000_steps", "unparsed_steps", "loop_breaks"):
            writer.add_scalar(f"teacher/{key}", stats[key], global_step)
        # the LLM bill: every live answer, request, token and second of the run, whichever teacher asked (the
        # adaptive schedule's teacher-alone warm-up and the demos included): the shared planner counts them
        bill = envs.teacher.planner.bill()
        for key, value in bill.items():
            writer.add_scalar(f"teacher/{key}", value, global_step)
        # success rate, SPS, progress bar, checkpoint
        run.end_iteration(iteration, next_obs_dict, next_done, curves={"lambda": lam, "llm_calls": bill["llm_calls"]},
                          lam=f"{lam:.2f}", agree=f"{agreement:.2f}")

    gc.unfreeze()  # collectable again (a run inside another program leaves nothing behind)
    run.end_training()  # the final checkpoint; on Ctrl-C the run stops here
    with run.final_evaluation():
        greedy = run.evaluate(agent, make_env(args.env_id, 1, False, "", args.visits), greedy=True)
        sampled = run.evaluate(agent, make_env(args.env_id, 1, False, "", args.visits), greedy=False)
        # the teacher alone on the same seeds: student / teacher return above 1 means the student surpassed it
        teacher_eval = teacher_alone_returns(args, envs.teacher.planner, run.eval_seeds(), stop=lambda: run.interrupted)
    run.write_summary(
        "ppo_teacher", greedy, sampled, planner=args.planner, schedule=args.schedule,
        teacher_alone_return=teacher_return if args.schedule == "adaptive" else None,
        teacher_demo_frames=demo_frames, teacher_eval_success_rate=float(np.mean(teacher_eval > 0)),
        teacher_eval_mean_return=float(np.mean(teacher_eval)), teacher_stats=envs.teacher_stats(),
        **envs.teacher.planner.bill())  # the whole run's LLM bill, the final teacher-alone evaluation included
    gc.freeze()  # the run is over: at exit the garbage collector need not go through every object (0.8 s)
