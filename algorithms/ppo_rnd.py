# PPO + Random Network Distillation (Burda et al., 2018, arXiv 1810.12894) on the memory-map tasks, in CleanRL's
# single-file style after CleanRL's ppo_rnd_envpool.py: the no-LLM exploration baseline. It is algorithms/ppo.py
# (same network, observation, settings and run machinery) plus RND: a fixed random target network and a predictor
# trained to match it on the states the agent reaches; the predictor's error is an intrinsic reward, normalised by
# a running std of its discounted return, with its own value head and advantages, not cut at episode ends.
# What is not the algorithm (checkpoints, resume, signals, evaluation, the summary) is teacher_wrappers.training.
#
#   python algorithms/ppo_rnd.py --env-id TeacherWrappers/SimpleDoorKey-v0
import gc
import os
import random
from dataclasses import dataclass

os.environ.setdefault("OMP_NUM_THREADS", "1")  # small networks on CPU: one thread is several times faster

import gymnasium as gym
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import tyro
from gymnasium.wrappers.utils import RunningMeanStd
from torch.distributions import Distribution
from torch.distributions.categorical import Categorical

from teacher_wrappers import training
from teacher_wrappers.optim import Adam
from teacher_wrappers.student import Agent, Minibatches, layer_init, student_env, student_obs, student_obs_shape
from teacher_wrappers.grouped import make_vector_env


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
    of charts/success_rate)"""

    # The agent's network
    student: str = "mlp"
    """the network: 'mlp' (feed-forward) or 'lstm' (an LSTM over the same features, its state carried through the
    episode; minibatches of whole environments: --num-envs a multiple of --num-minibatches)"""
    visits: bool = False
    """show the agent how often it has seen the current memory map this episode (teacher_wrappers.RevisitCount),
    so that a greedy policy can notice that it is going round in circles"""

    # RND arguments (CleanRL's ppo_rnd_envpool.py)
    update_proportion: float = 0.25
    """proportion of exp used for predictor update"""
    int_coef: float = 1.0
    """coefficient of intrinsic advantages"""
    ext_coef: float = 2.0
    """coefficient of extrinsic advantages"""
    int_gamma: float = 0.99
    """Intrinsic reward discount rate"""

    # Logging, evaluation and checkpoints
    success_window: int = 100
    """the success rate and return are averaged over the most recent episodes, this many"""
    eval_episodes: int = 100
    """evaluation episodes at the end (greedy and sampled), on fixed seeds"""
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


class RNDModel(nn.Module):
    """Random Network Distillation on the student's one-hot egocentric map (`Agent.planes`, normalised): a target
    network with fixed random weights and a deeper predictor trained to reproduce its output. Both have CleanRL's
    shape (convolutions, then one linear layer for the target, three for the predictor) at the student's width."""

    def __init__(self, channels: int, side: int, output_size: int = 128):
        super().__init__()

        def convolutions():  # the student's encoder, with CleanRL's leaky ReLUs
            return [layer_init(nn.Conv2d(channels, 16, 2, stride=2, padding=1)), nn.LeakyReLU(),
                    layer_init(nn.Conv2d(16, 32, 3, stride=2, padding=1)), nn.LeakyReLU(), nn.Flatten()]

        with torch.no_grad():
            features = nn.Sequential(*convolutions())(torch.zeros(1, channels, side, side)).shape[1]
        self.predictor = nn.Sequential(
            *convolutions(),
            layer_init(nn.Linear(features, output_size)), nn.ReLU(),
            layer_init(nn.Linear(output_size, output_size)), nn.ReLU(),
            layer_init(nn.Linear(output_size, output_size)),
        )
        self.target = nn.Sequential(*convolutions(), layer_init(nn.Linear(features, output_size)))
        # target network is not trainable
        for param in self.target.parameters():
            param.requires_grad = False

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.predictor(x), self.target(x)

    def intrinsic_reward(self, x: torch.Tensor) -> torch.Tensor:
        """The prediction error on each state: high where the predictor has not been trained (new states)."""
        predict_feature, target_feature = self(x)
        return (target_feature - predict_feature).pow(2).sum(1) / 2

    def loss(self, x: torch.Tensor, update_proportion: float) -> torch.Tensor:
        """The predictor's loss on a random `update_proportion` of the samples (CleanRL's mask)."""
        predict_feature, target_feature = self(x)
        forward_loss = F.mse_loss(predict_feature, target_feature.detach(), reduction="none").mean(-1)
        mask = (torch.rand(len(forward_loss), device=x.device) < update_proportion).float()
        return (forward_loss * mask).sum() / mask.sum().clamp(min=1.0)


def normalise(planes: torch.Tensor, obs_rms: RunningMeanStd) -> torch.Tensor:
    """RND's observation normalisation: each input element whitened by its running mean and std, clipped to [-5, 5]
    (a rare one-hot element, such as a carried key or an open door, stands out; one that never changes is 0)."""
    mean = torch.as_tensor(obs_rms.mean, dtype=torch.float32, device=planes.device)
    var = torch.as_tensor(obs_rms.var, dtype=torch.float32, device=planes.device)
    return ((planes - mean) / torch.sqrt(var + 1e-8)).clip(-5, 5)


if __name__ == "__main__":
    args = tyro.cli(Args)
    training.check_args(args)
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    if not 0 < args.update_proportion <= 1:
        training.fail(f"--update-proportion must be above 0 and at most 1, got {args.update_proportion}")
    # the run folder, TensorBoard, checkpoints, Ctrl-C and crashes; refuses a --resume checkpoint that does not fit
    run = training.Run(args, script=os.path.basename(__file__), curves=("intrinsic_reward",))
    greedy_envs = run.greedy_envs  # the first ones act greedily

    # TRY NOT TO MODIFY: seeding
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.backends.cudnn.deterministic = args.torch_deterministic
    Distribution.set_default_validate_args(False)  # argument checks cost more than the tiny network
    device = torch.device("cuda" if torch.cuda.is_available() and args.cuda else "cpu")

    # env setup: Gymnasium 1.x with same-step autoreset, so the obs after a done starts the next episode
    envs = make_vector_env([make_env(args.env_id, i, args.capture_video, run.name, args.visits)
                            for i in range(args.num_envs)],
                           asynchronous=args.async_envs, autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    assert isinstance(envs.single_action_space, gym.spaces.Discrete), "only discrete action space is supported"
    n_actions = int(envs.single_action_space.n)

    obs_shape = student_obs_shape(envs.single_observation_space)

    recurrent = args.student == "lstm"
    agent = Agent.for_space(envs.single_observation_space, n_actions, recurrent=recurrent, int_value=True).to(device)
    planes_shape = agent.planes(torch.zeros((1,) + obs_shape, dtype=torch.uint8, device=device)).shape[1:]
    rnd_model = RNDModel(planes_shape[0], planes_shape[-1]).to(device)
    combined_parameters = list(agent.parameters()) + list(rnd_model.predictor.parameters())
    # one optimizer for the student and the predictor (CleanRL); fused: one kernel per step
    optimizer = Adam(combined_parameters, lr=args.learning_rate, eps=1e-5, fused=True)
    obs_rms = RunningMeanStd(shape=tuple(planes_shape))  # the RND input's running mean and variance
    reward_rms = RunningMeanStd()  # the running variance of the discounted intrinsic return
    discounted_reward = np.zeros(args.num_envs)  # each env's discounted intrinsic return so far (never reset)

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape, dtype=torch.uint8).to(device)
    actions = torch.zeros((args.num_steps, args.num_envs)).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    ext_values = torch.zeros((args.num_steps, args.num_envs)).to(device)
    int_values = torch.zeros((args.num_steps, args.num_envs)).to(device)
    reached = torch.zeros((args.num_steps, args.num_envs) + obs_shape, dtype=torch.uint8).to(device)  # RND's states

    # TRY NOT TO MODIFY: start the game (or continue a checkpoint exactly, the LSTM state and RND's included)
    next_lstm_state = agent.initial_state(args.num_envs) if recurrent else None

    def rnd_state():
        return {"lstm_state": next_lstm_state, "discounted_reward": discounted_reward.copy(),
                **{name: {"mean": rms.mean.copy(), "var": rms.var.copy(), "count": rms.count}
                   for name, rms in (("obs_rms", obs_rms), ("reward_rms", reward_rms))}}

    next_obs_dict, next_done = run.start(envs, {"agent": agent, "rnd_model": rnd_model, "optimizer": optimizer},
                                         rnd_state, eval_env=make_env(args.env_id, 1, False, "", args.visits))
    if run.resumed:
        if recurrent:
            next_lstm_state = run.state["lstm_state"].to(device)
        discounted_reward = run.state["discounted_reward"]
        for name, rms in (("obs_rms", obs_rms), ("reward_rms", reward_rms)):
            rms.mean, rms.var, rms.count = (run.state[name][key] for key in ("mean", "var", "count"))
    next_obs = torch.as_tensor(student_obs(next_obs_dict)).to(device)
    next_done = next_done.to(device)
    writer = run.writer

    for iteration in run.iterations():
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
                    action, logprob, _, value, logits, hidden, next_lstm_state = agent.get_action_and_value(
                        next_obs, next_lstm_state, next_done)
                else:
                    action, logprob, _, value, logits, hidden = agent.get_action_and_value(next_obs)
                if greedy_envs:
                    action[:greedy_envs] = logits[:greedy_envs].argmax(-1)
                    logprob = Categorical(logits=logits).log_prob(action)
                ext_values[step] = value.flatten()
                int_values[step] = agent.critic_int(hidden).flatten()
            actions[step] = action
            logprobs[step] = logprob

            # TRY NOT TO MODIFY: execute the game and log data.
            next_obs_dict, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done_np = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).to(device).view(-1)
            next_obs = torch.as_tensor(student_obs(next_obs_dict)).to(device)
            next_done = torch.Tensor(next_done_np).to(device)
            reached[step] = next_obs  # the state the action led to: where an episode ended, its last one
            for i in np.flatnonzero(next_done_np):
                reached[step, i] = torch.as_tensor(student_obs(infos["final_obs"][i]))
            run.record_step(reward, next_done_np)  # episode returns, success rate, TensorBoard
        global_step = run.global_step

        # RND: the intrinsic reward of every state reached, after the observation statistics took this rollout in
        with torch.no_grad():
            b_planes = agent.planes(reached.reshape((-1,) + obs_shape))
            obs_rms.update(b_planes.cpu().numpy())
            rnd_next_obs = normalise(b_planes, obs_rms)
            curiosity_rewards = rnd_model.intrinsic_reward(rnd_next_obs).view(args.num_steps, args.num_envs)
        # normalised by a running std of the discounted intrinsic return (RND's reward forward filter, along time)
        curiosity_np = curiosity_rewards.cpu().numpy().astype(np.float64)
        curiosity_returns = np.zeros_like(curiosity_np)
        for t in range(args.num_steps):
            curiosity_returns[t] = discounted_reward = discounted_reward * args.int_gamma + curiosity_np[t]
        reward_rms.update_from_moments(curiosity_returns.mean(), curiosity_returns.var(), curiosity_returns.size)
        curiosity_rewards /= float(np.sqrt(reward_rms.var))

        # bootstrap value if not done; the intrinsic return is not cut at episode ends
        with torch.no_grad():
            hidden = (agent.get_states(next_obs, next_lstm_state, next_done)[0] if recurrent
                      else agent.features(next_obs))
            next_value_ext = agent.critic(hidden).reshape(1, -1)
            next_value_int = agent.critic_int(hidden).reshape(1, -1)
            ext_advantages = torch.zeros_like(rewards).to(device)
            int_advantages = torch.zeros_like(curiosity_rewards).to(device)
            ext_lastgaelam = int_lastgaelam = 0
            for t in reversed(range(args.num_steps)):
                if t == args.num_steps - 1:
                    ext_nextnonterminal = 1.0 - next_done
                    ext_nextvalues, int_nextvalues = next_value_ext, next_value_int
                else:
                    ext_nextnonterminal = 1.0 - dones[t + 1]
                    ext_nextvalues, int_nextvalues = ext_values[t + 1], int_values[t + 1]
                ext_delta = rewards[t] + args.gamma * ext_nextvalues * ext_nextnonterminal - ext_values[t]
                int_delta = curiosity_rewards[t] + args.int_gamma * int_nextvalues - int_values[t]
                ext_advantages[t] = ext_lastgaelam = (
                    ext_delta + args.gamma * args.gae_lambda * ext_nextnonterminal * ext_lastgaelam)
                int_advantages[t] = int_lastgaelam = int_delta + args.int_gamma * args.gae_lambda * int_lastgaelam
            ext_returns = ext_advantages + ext_values
            int_returns = int_advantages + int_values

        # flatten the batch
        b_obs = obs.reshape((-1,) + obs_shape)
        b_logprobs = logprobs.reshape(-1)
        b_actions = actions.reshape(-1)
        b_dones = dones.reshape(-1)
        b_ext_returns = ext_returns.reshape(-1)
        b_int_returns = int_returns.reshape(-1)
        b_ext_values = ext_values.reshape(-1)
        b_advantages = int_advantages.reshape(-1) * args.int_coef + ext_advantages.reshape(-1) * args.ext_coef

        # Optimizing the policy and value network: minibatches of samples or, for the LSTM, of whole envs
        minibatches = Minibatches(args.num_steps, args.num_envs, args.num_minibatches, whole_envs=recurrent)
        clipfracs = []
        for epoch in range(args.update_epochs):
            for mb_inds, mb_envs in minibatches.epoch():
                # the LSTM runs these envs' sequences again, from the rollout's initial state
                sequences = (initial_lstm_state[:, mb_envs], b_dones[mb_inds]) if recurrent else ()
                forward_loss = rnd_model.loss(rnd_next_obs[mb_inds], args.update_proportion)
                _, newlogprob, entropy, new_ext_values, _, hidden, *_ = agent.get_action_and_value(
                    b_obs[mb_inds], *sequences, b_actions.long()[mb_inds])
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

                # Value loss: the extrinsic value's as in ppo.py, the intrinsic value's unclipped (CleanRL)
                new_ext_values, new_int_values = new_ext_values.view(-1), agent.critic_int(hidden).view(-1)
                if args.clip_vloss:
                    ext_v_loss_unclipped = (new_ext_values - b_ext_returns[mb_inds]) ** 2
                    ext_v_clipped = b_ext_values[mb_inds] + torch.clamp(
                        new_ext_values - b_ext_values[mb_inds],
                        -args.clip_coef,
                        args.clip_coef,
                    )
                    ext_v_loss_clipped = (ext_v_clipped - b_ext_returns[mb_inds]) ** 2
                    ext_v_loss_max = torch.max(ext_v_loss_unclipped, ext_v_loss_clipped)
                    ext_v_loss = 0.5 * ext_v_loss_max.mean()
                else:
                    ext_v_loss = 0.5 * ((new_ext_values - b_ext_returns[mb_inds]) ** 2).mean()
                int_v_loss = 0.5 * ((new_int_values - b_int_returns[mb_inds]) ** 2).mean()
                v_loss = ext_v_loss + int_v_loss

                entropy_loss = entropy.mean()
                loss = pg_loss - args.ent_coef * entropy_loss + v_loss * args.vf_coef + forward_loss

                optimizer.zero_grad()
                loss.backward()
                nn.utils.clip_grad_norm_(combined_parameters, args.max_grad_norm)
                optimizer.step()

            if args.target_kl is not None and approx_kl > args.target_kl:
                break

        y_pred, y_true = b_ext_values.cpu().numpy(), b_ext_returns.cpu().numpy()
        var_y = np.var(y_true)
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
        writer.add_scalar("losses/fwd_loss", forward_loss.item(), global_step)
        writer.add_scalar("losses/int_value_loss", int_v_loss.item(), global_step)
        intrinsic = curiosity_rewards.mean().item()
        writer.add_scalar("charts/intrinsic_reward", intrinsic, global_step)
        # success rate, SPS, progress bar, checkpoint
        run.end_iteration(iteration, next_obs_dict, next_done, curves={"intrinsic_reward": intrinsic})

    run.end_training()  # the final checkpoint; on Ctrl-C the run stops here
    with run.final_evaluation():
        greedy = run.evaluate(agent, make_env(args.env_id, 1, False, "", args.visits), greedy=True)
        sampled = run.evaluate(agent, make_env(args.env_id, 1, False, "", args.visits), greedy=False)
    run.write_summary("ppo_rnd", greedy, sampled, planner=None)
    gc.freeze()  # the run is over: at exit the garbage collector need not go through every object (0.8 s)
