# Plain PPO on the memory-map tasks, in CleanRL's single-file style: the baseline for ppo_teacher.py.
# Same network (teacher_wrappers.student), environments and logging as ppo_teacher.py, without the teacher.
# What is not the algorithm (checkpoints, resume, signals, evaluation, the summary) is teacher_wrappers.training.
#
#   python algorithms/ppo.py --env-id TeacherWrappers/SimpleDoorKey-v0
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

from teacher_wrappers import training
from teacher_wrappers.optim import Adam
from teacher_wrappers.student import Agent, Minibatches, student_env, student_obs, student_obs_shape
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


if __name__ == "__main__":
    args = tyro.cli(Args)
    training.check_args(args)
    args.batch_size = int(args.num_envs * args.num_steps)
    args.minibatch_size = int(args.batch_size // args.num_minibatches)
    args.num_iterations = args.total_timesteps // args.batch_size
    # the run folder, TensorBoard, checkpoints, Ctrl-C and crashes; refuses a --resume checkpoint that does not fit
    run = training.Run(args, script=os.path.basename(__file__))
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
    agent = Agent.for_space(envs.single_observation_space, n_actions, recurrent=recurrent).to(device)
    optimizer = Adam(agent.parameters(), lr=args.learning_rate, eps=1e-5, fused=True)  # fused: one kernel per step

    # ALGO Logic: Storage setup
    obs = torch.zeros((args.num_steps, args.num_envs) + obs_shape, dtype=torch.uint8).to(device)
    actions = torch.zeros((args.num_steps, args.num_envs)).to(device)
    logprobs = torch.zeros((args.num_steps, args.num_envs)).to(device)
    rewards = torch.zeros((args.num_steps, args.num_envs)).to(device)
    dones = torch.zeros((args.num_steps, args.num_envs)).to(device)
    values = torch.zeros((args.num_steps, args.num_envs)).to(device)

    # TRY NOT TO MODIFY: start the game (or continue a checkpoint exactly, the LSTM state included)
    next_lstm_state = agent.initial_state(args.num_envs) if recurrent else None
    next_obs_dict, next_done = run.start(envs, {"agent": agent, "optimizer": optimizer},
                                         lambda: {"lstm_state": next_lstm_state},
                                         eval_env=make_env(args.env_id, 1, False, "", args.visits))
    if recurrent and run.resumed:
        next_lstm_state = run.state["lstm_state"].to(device)
    next_obs = torch.as_tensor(student_obs(next_obs_dict)).to(device)
    next_done = next_done.to(device)
    writer = run.writer
    # everything built so far (torch, the envs, the network) lives to the end: the garbage collector's full passes skip
    # it, as in ppo_teacher.py (where each one would walk all of it, ~0.1 s once the teacher's memos have grown)
    gc.freeze()

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
            next_obs_dict, reward, terminations, truncations, infos = envs.step(action.cpu().numpy())
            next_done_np = np.logical_or(terminations, truncations)
            rewards[step] = torch.tensor(reward).to(device).view(-1)
            next_obs = torch.as_tensor(student_obs(next_obs_dict)).to(device)
            next_done = torch.Tensor(next_done_np).to(device)
            run.record_step(reward, next_done_np)  # episode returns, success rate, TensorBoard
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

        # Optimizing the policy and value network: minibatches of samples or, for the LSTM, of whole envs
        minibatches = Minibatches(args.num_steps, args.num_envs, args.num_minibatches, whole_envs=recurrent)
        clipfracs = []
        for epoch in range(args.update_epochs):
            for mb_inds, mb_envs in minibatches.epoch():
                # the LSTM runs these envs' sequences again, from the rollout's initial state
                sequences = (initial_lstm_state[:, mb_envs], b_dones[mb_inds]) if recurrent else ()
                _, newlogprob, entropy, newvalue, *_ = agent.get_action_and_value(
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

        y_pred, y_true = b_values.cpu().numpy(), b_returns.cpu().numpy()
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
        run.end_iteration(iteration, next_obs_dict, next_done)  # success rate, SPS, progress bar, checkpoint

    gc.unfreeze()  # collectable again (a run inside another program leaves nothing behind)
    run.end_training()  # the final checkpoint; on Ctrl-C the run stops here
    with run.final_evaluation():
        greedy = run.evaluate(agent, make_env(args.env_id, 1, False, "", args.visits), greedy=True)
        sampled = run.evaluate(agent, make_env(args.env_id, 1, False, "", args.visits), greedy=False)
    run.write_summary("ppo", greedy, sampled, planner=None)
    gc.freeze()  # the run is over: at exit the garbage collector need not go through every object (0.8 s)
