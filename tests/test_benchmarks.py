import numpy as np

from benchmarks import report, teacher_eval


def test_teacher_eval_counts_outcomes():
    result = teacher_eval.evaluate("LavaDoorKey", "rules", episodes=5)
    assert result["success_rate"] == 1.0 and result["lava_deaths"] == 0 and result["timeouts"] == 0
    assert result["teacher_stats"]["steps"] > 0
    assert "| LavaDoorKey | rules | 1.000 |" in teacher_eval.markdown([result])


def test_gif_frames_come_from_minigrids_renderer_for_solved_episodes():
    from benchmarks.render_gifs import play
    from teacher_wrappers import Teacher

    class TeacherAsStudent:
        """Stands in for a trained student: acts like the rules teacher (argmax)."""

        teacher = Teacher("rules")

        def act(self, obs):
            return np.array([self.teacher.act([obs["image"][0]])[0][0].argmax()])

        def reset(self, mask=None):  # the deployed student's API: a new episode starts
            pass

    frames = play(TeacherAsStudent(), "TeacherWrappers/SimpleDoorKey-v0", episodes=1, first_seed=0, tile_size=8)
    assert len(frames) > 5 and frames[0].size == (80, 80)
    assert frames[-1].tobytes() == frames[-2].tobytes()  # the last frame is held


def test_report_compares_the_student_with_its_teacher_on_the_same_seeds():
    runs = [{"eval_mean_return": 0.6, "teacher_eval_mean_return": 0.5},
            {"eval_mean_return": 0.4, "teacher_eval_mean_return": 0.5},
            {"eval_mean_return": 0.3}]  # plain PPO: no teacher to compare with
    assert report._return_over_teacher(runs) == __import__("pytest").approx(1.0)
    assert report._return_over_teacher(runs[2:]) is None


def test_suite_teacher_eval_compares_rules_with_random_and_counts_unknown_texts(monkeypatch):
    monkeypatch.setattr(teacher_eval, "SUITE_ENVS", ("MiniGrid-GoToDoor-5x5-v0", "BabyAI-OpenDoor-v0"))
    monkeypatch.setattr(teacher_eval, "RECORDED_ENV", "MiniGrid-DoorKey-5x5-v0")
    args = teacher_eval.Args(suite=True, episodes=4)
    rows = teacher_eval.suite_rows(args)
    rules = [r for r in rows if r["planner"] == "rules"]
    randoms = [r for r in rows if r["planner"] == "random"]
    assert all(r["success_rate"] == 1.0 for r in rules)
    assert all(r["success_rate"] < 1.0 and r["teacher_stats"] == {} for r in randoms)
    recorded = {bool(r["planner_kwargs"]): r for r in rows if r["planner"] == "recorded"}
    assert recorded[True]["success_rate"] == 1.0 and recorded[True]["teacher_stats"]["unknown_texts"] > 0
    text = teacher_eval.suite_markdown(rows, args)
    assert "**2 of 2 envs at >= 0.95 success**" in text and "| BabyAI-OpenDoor-v0 | 1.000 |" in text
