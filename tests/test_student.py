"""The student's pieces: the revisit count it observes, the success buffer and the Q-filtered target."""

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

import teacher_wrappers  # noqa: F401  (registers the tasks)
from teacher_wrappers.distillation import SuccessBuffer, distillation_target, without_loops
from teacher_wrappers.episodic import RevisitCount
from teacher_wrappers.student import Agent, student_env, student_obs

ROOT = Path(__file__).resolve().parents[1]
DONE = 6  # MiniGrid's no-op on these tasks


def test_revisit_count_counts_the_same_map_and_restarts_each_episode():
    env = RevisitCount(gym.make("TeacherWrappers/SimpleDoorKey-v0"))
    obs, _ = env.reset(seed=0)
    counts = [int(obs["revisits"][0])]
    for _ in range(3):  # the no-op shows the same memory map again
        obs, *_ = env.step(DONE)
        counts.append(int(obs["revisits"][0]))
    assert counts == [1, 2, 3, 4]
    obs, *_ = env.step(1)  # a turn shows a new heading: a map not seen before
    assert obs["revisits"][0] == 1
    assert env.reset(seed=0)[0]["revisits"][0] == 1
    assert env.observation_space.contains(obs)


def test_the_network_sees_the_revisit_count():
    env = student_env("TeacherWrappers/SimpleDoorKey-v0", visits=True)
    obs, _ = env.reset(seed=0)
    first = student_obs(obs)
    again = student_obs({**obs, "revisits": np.array([9], dtype=np.uint8)})
    assert first.shape == (10, 10, 5) and (again[..., :4] == first[..., :4]).all()
    torch.manual_seed(0)
    agent = Agent(first.shape, 7)
    with torch.no_grad():
        logits = agent.actor(agent.features(torch.as_tensor(np.stack([first, again]))))
    assert not torch.allclose(logits[0], logits[1])
    blind = student_env("TeacherWrappers/SimpleDoorKey-v0")
    assert student_obs(blind.reset(seed=0)[0]).shape == (10, 10, 4)


def test_success_buffer_keeps_the_newest_states():
    buffer = SuccessBuffer(5, (2,), 3)
    buffer.add(np.arange(8).repeat(2).reshape(8, 2).astype(np.uint8), np.eye(3, dtype=np.float32)[np.arange(8) % 3])
    assert buffer.size == 5
    assert sorted(buffer.obs[:, 0]) == [3, 4, 5, 6, 7]  # the oldest three went first
    torch.manual_seed(0)
    obs, teacher = buffer.sample(20, "cpu")
    assert obs.shape == (20, 2) and set(obs[:, 0].tolist()) <= {3, 4, 5, 6, 7}
    assert torch.equal(teacher.argmax(1), obs[:, 0].long() % 3)


def test_success_buffer_state_holds_what_it_holds_and_continues_exactly():
    from teacher_wrappers.distillation import SuccessEpisodes

    def filled(buffer, count):
        buffer.add(np.arange(count).repeat(2).reshape(count, 2).astype(np.uint8),
                   np.eye(3, dtype=np.float32)[np.arange(count) % 3])
        return buffer

    for count in (3, 8):  # part filled (the state holds 3 rows, not 5), then full and wrapped round
        buffer = filled(SuccessBuffer(5, (2,), 3), count)
        state = buffer.state_dict()
        assert len(state["obs"]) == min(count, 5)
        for saved in (state, {key: np.copy(value) for key, value in vars(buffer).items()}):  # and older checkpoints'
            resumed = SuccessBuffer(5, (2,), 3)
            resumed.load_state_dict(saved)
            assert all(np.array_equal(getattr(resumed, key), getattr(buffer, key)) for key in ("obs", "teacher"))
            assert (resumed.size, resumed.next) == (buffer.size, buffer.next)
        taken = state["obs"].copy()
        buffer.add(np.full((5, 2), 9, np.uint8), np.zeros((5, 3), np.float32))
        assert np.array_equal(state["obs"], taken)  # a copy: later additions leave it as it was
    episodes = SuccessEpisodes(6)
    episodes.add(np.zeros((2, 2), np.uint8), np.zeros((2, 3), np.float32))
    state = episodes.state_dict()
    episodes.add(np.ones((3, 2), np.uint8), np.zeros((3, 3), np.float32))
    resumed = SuccessEpisodes(6)
    resumed.load_state_dict(state)
    assert resumed.size == 2 and len(resumed.episodes) == 1  # the state as it was when taken


def test_success_episodes_keep_whole_episodes():
    from teacher_wrappers.distillation import SuccessEpisodes

    buffer = SuccessEpisodes(6)
    for episode, length in enumerate((3, 2, 4)):  # 9 states: the oldest episode goes, whole
        buffer.add(np.full((length, 2), episode, dtype=np.uint8), np.eye(3, dtype=np.float32)[[episode] * length])
    assert buffer.size == 6 and [int(obs[0, 0]) for obs, _ in buffer.episodes] == [1, 2]
    torch.manual_seed(0)
    obs, teacher, lengths = buffer.sample(12, "cpu")  # about 12 states: 4 episodes of 3 on average
    assert len(lengths) == 4 and set(lengths) <= {2, 4} and len(obs) == len(teacher) == sum(lengths)
    starts = np.cumsum([0] + lengths[:-1])
    assert [int(obs[start, 0]) for start in starts] == [1 if n == 2 else 2 for n in lengths]  # each one whole, in order
    assert torch.equal(teacher.argmax(1), obs[:, 0].long())


def test_success_buffers_state_dicts_hold_copies_and_restore_them():
    from teacher_wrappers.distillation import SuccessEpisodes

    buffer, states = SuccessBuffer(5, (2,), 3), np.arange(6).repeat(2).reshape(6, 2).astype(np.uint8)
    buffer.add(states[:3], np.eye(3, dtype=np.float32)[:3])
    saved = buffer.state_dict()
    assert len(saved["obs"]) == 3  # the stored states only
    old = {key: (value.copy() if isinstance(value, np.ndarray) else value) for key, value in vars(buffer).items()}
    buffer.add(states[3:], np.eye(3, dtype=np.float32)[:3])  # wraps round: overwrites stored rows
    assert saved["obs"][:, 0].tolist() == [0, 1, 2]  # the copy did not change
    for state in (saved, old):  # and an older checkpoint's whole arrays
        again = SuccessBuffer(5, (2,), 3)
        again.load_state_dict(state)
        assert again.size == 3 and again.next == 3 and np.array_equal(again.obs[:3], states[:3])
    episodes = SuccessEpisodes(6)
    episodes.add(states[:2], np.eye(3, dtype=np.float32)[:2])
    saved = episodes.state_dict()
    episodes.add(states[2:6], np.eye(3, dtype=np.float32)[[0, 1, 2, 0]])
    again = SuccessEpisodes(6)
    again.load_state_dict(saved)
    assert again.size == 2 and len(again.episodes) == 1 and len(episodes.episodes) == 2


def test_q_filter_drops_suggestions_valued_below_the_students_choice():
    target = distillation_target
    teacher = torch.tensor([[0.7, 0.3, 0.0], [1.0, 0.0, 0.0], [0.5, 0.5, 0.0]])
    logits = torch.tensor([[0.0, 0.0, 1.0], [0.0, 0.0, 1.0], [1.0, 0.0, 0.0]])  # the student's choices: 2, 2, 0
    q = torch.tensor([[0.1, 0.9, 0.8], [0.2, 0.5, 0.9], [0.5, 0.48, 0.0]])
    assert torch.equal(target(teacher, logits, None, 0.05), teacher)
    filtered = target(teacher, logits, q, 0.05)
    assert torch.allclose(filtered[0], torch.tensor([0.0, 1.0, 0.0]))  # action 0 is valued well below action 2
    assert torch.equal(filtered[1], torch.zeros(3))  # nothing trusted: no distillation on this state
    assert torch.allclose(filtered[2], torch.tensor([0.5, 0.5, 0.0]))  # within the margin: both kept


def test_distillation_from_successes_fills_the_buffer(tmp_path):
    from test_algorithms import SUCCESSES, TINY, run, scalars

    run("ppo_teacher.py", *SUCCESSES, "--total-timesteps", "256", "--teacher-eval-episodes", "2", "--run-name", "s", *TINY,
        cwd=tmp_path)
    tags = scalars(tmp_path / "runs/s")
    assert tags["teacher/success_buffer_states"][-1] >= 8
    assert all(np.isfinite(tags["teacher/kl"]))
    summary = json.loads((tmp_path / "runs/s/summary.json").read_text())
    assert summary["args"]["distill_from"] == "successes" and summary["args"]["q_filter"]


def test_greedy_envs_are_reported_apart_from_the_sampled_ones(tmp_path):
    from test_algorithms import run, scalars

    run("ppo_teacher.py", "--greedy-fraction", "0.5", "--total-timesteps", "640", "--run-name", "g", "--num-envs", "4",
        "--num-steps", "160", "--eval-episodes", "1", "--teacher-eval-episodes", "2", "--no-progress", cwd=tmp_path)
    tags = scalars(tmp_path / "runs/g")
    summary = json.loads((tmp_path / "runs/g/summary.json").read_text())
    # 4 envs x 160 steps: each finished at least one episode (150 steps at most); 2 of them act greedily
    assert len(tags["charts/greedy_episodic_return"]) >= 2
    assert len(tags["charts/episodic_return"]) >= 2
    assert summary["learning_curve"]["episodes"][-1] == len(tags["charts/episodic_return"])


def _recurrent_student_and_observations(steps, envs, seed=0):
    """A recurrent student and `steps` x `envs` observations of SimpleDoorKey under random actions (time-major),
    with the done flags of the rollout (1 where an observation begins a new episode)."""
    from teacher_wrappers.student import RecurrentAgent

    env = gym.vector.SyncVectorEnv([lambda: student_env("TeacherWrappers/SimpleDoorKey-v0")] * envs,
                                   autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
    obs, _ = env.reset(seed=seed)
    rng, frames, dones, done = np.random.default_rng(seed), [], [], np.zeros(envs, dtype=bool)
    for _ in range(steps):
        frames.append(student_obs(obs))
        dones.append(done)
        obs, _, terminated, truncated, _ = env.step(rng.integers(0, 3, envs))  # turns and forward: episodes run long
        done = terminated | truncated
    torch.manual_seed(seed)
    agent = RecurrentAgent(frames[0].shape[1:], 7)
    return agent, torch.as_tensor(np.stack(frames)), torch.as_tensor(np.stack(dones), dtype=torch.float32)


def test_the_recurrent_state_resets_where_an_episode_starts():
    agent, obs, _ = _recurrent_student_and_observations(6, 3)
    with torch.no_grad():
        _, state = agent.get_states(obs[:5].flatten(0, 1), agent.initial_state(3), torch.zeros(15))
        assert state.abs().sum() > 0  # five steps in, the state remembers them
        done = torch.tensor([1.0, 0.0, 1.0])  # sub-envs 0 and 2 begin new episodes at the sixth step
        after, _ = agent.get_states(obs[5], state, done)
        fresh, _ = agent.get_states(obs[5], agent.initial_state(3), torch.zeros(3))
        carried, _ = agent.get_states(obs[5], state, torch.zeros(3))
    assert torch.equal(after[[0, 2]], fresh[[0, 2]])
    assert torch.equal(after[1], carried[1]) and not torch.allclose(after[1], fresh[1])


def test_a_recurrent_sequence_gives_the_step_by_step_outputs():
    """The update runs the rollout's sequences again, from its initial state, in minibatches of whole envs: the same
    outputs as the rollout's one step at a time, resets included; whole episodes from zero give them too."""
    steps, envs = 32, 4
    agent, obs, dones = _recurrent_student_and_observations(steps, envs)
    dones[7, 1] = dones[20, 2] = dones[21, 0] = 1.0  # resets mid-sequence, beside the episodes' own ends
    with torch.no_grad():
        start = agent.get_states(obs[0], agent.initial_state(envs), torch.zeros(envs))[1]  # a state not zero
        state, stepwise = start, []
        for t in range(steps):
            hidden, state = agent.get_states(obs[t], state, dones[t])
            stepwise.append(hidden)
        stepwise = torch.stack(stepwise)  # (steps, envs, 128)
        from teacher_wrappers.student import Minibatches

        minibatches = list(Minibatches(steps, envs, 2, whole_envs=True).epoch())  # 2 minibatches of 2 whole envs
        assert sorted(np.concatenate([chosen for _, chosen in minibatches]).tolist()) == [0, 1, 2, 3]
        indices, mb_envs = minibatches[0]
        assert torch.equal(obs.flatten(0, 1)[indices], obs[:, mb_envs].flatten(0, 1))  # every step of each, in order
        sequence, final = agent.get_states(obs[:, mb_envs].flatten(0, 1), start[:, mb_envs],
                                           dones[:, mb_envs].flatten())
        # (torch.testing.assert_close would import torch.distributed: seconds)
        assert torch.allclose(sequence.view(steps, 2, -1), stepwise[:, mb_envs], atol=1e-6)
        assert torch.allclose(final, state[:, mb_envs], atol=1e-6)
        # env 1 from its reset at step 7 to step 19: one episode from the zero state
        episodes = agent.episode_states(torch.cat([obs[7:20, 1], obs[21:30, 0]]), [13, 9])
        assert torch.allclose(episodes, torch.cat([stepwise[7:20, 1], stepwise[21:30, 0]]), atol=1e-6)


def test_evaluation_carries_the_recurrent_state_and_resets_it_per_finished_episode():
    from teacher_wrappers.student import RecurrentAgent
    from teacher_wrappers.training import evaluate

    def make_env():
        return student_env("TeacherWrappers/SimpleDoorKey-v0", max_steps=5)  # short episodes: slots restart often

    torch.manual_seed(0)
    agent = RecurrentAgent(student_obs(make_env().reset(seed=0)[0]).shape, 7)
    calls, resets, act, reset = [], [], agent.act, agent.reset

    def watched_act(obs, greedy=True, generator=None):
        calls.append(None if agent.act_state is None else agent.act_state.clone())
        return act(obs, greedy, generator)

    def watched_reset(mask=None):
        resets.append(None if mask is None else np.array(mask))
        reset(mask)

    agent.act, agent.reset = watched_act, watched_reset
    success, _ = evaluate(agent, [make_env] * 2, np.arange(5), greedy=False)
    assert success == 0.0  # 5 steps are too few to open the door
    assert calls[0] is None and calls[1].abs().sum() > 0  # a fresh state, then carried
    # 5 episodes of 5 steps on 2 slots: both start anew at steps 0, 5 and 10 (the last round: one episode and an
    # idle slot), the last episode ends at step 15; each reset zeroes the state of the slots whose episode ended
    assert len(resets) == 4 and all(mask.all() for mask in resets[:3]) and resets[3].tolist() == [True, False]
    assert calls[5].abs().sum() == 0 and calls[6].abs().sum() > 0


def test_successful_episodes_enter_the_buffer_without_their_loops():
    states = np.array([[0], [1], [2], [1], [3], [3], [4], [0], [5]], dtype=np.uint8)  # 1 and 3 and 0 come again
    kept, targets = without_loops(states, np.arange(9))
    assert kept.ravel().tolist() == [0, 5] and targets.tolist() == [7, 8]  # from the last visit of 0 on
    kept, targets = without_loops(states[:7], np.arange(7))
    assert kept.ravel().tolist() == [0, 1, 3, 4] and targets.tolist() == [0, 3, 5, 6]
    path = np.arange(5, dtype=np.uint8)[:, None]
    assert without_loops(path, np.arange(5))[1].tolist() == [0, 1, 2, 3, 4]  # no loop: all of it


def test_one_forward_pass_over_two_batches_gives_each_its_own_features():  # ppo_teacher.py's PPO and buffer batches
    env = student_env("TeacherWrappers/SimpleDoorKey-v0")
    agent = Agent.for_space(env.observation_space, 7)
    batch = torch.as_tensor(np.stack([student_obs(env.reset(seed=seed)[0]) for seed in range(6)]))
    joint = agent.features(batch)
    first, second = agent.features(batch[:4]), agent.features(batch[4:])
    assert torch.allclose(joint, torch.cat([first, second]), atol=1e-6)
