import json

import numpy as np

from benchmarks import report, run, teacher_eval


def test_teacher_eval_counts_outcomes():
    result = teacher_eval.evaluate("LavaDoorKey", "rules", episodes=5)
    assert result["success_rate"] == 1.0 and result["lava_deaths"] == 0 and result["timeouts"] == 0
    assert result["teacher_stats"]["steps"] > 0
    assert "| LavaDoorKey | rules | 1.000 |" in teacher_eval.markdown([result])


def test_sweep_is_resumable_and_reported(tmp_path, capsys):
    args = run.Args(methods=["ppo", "teacher:rules"], tasks=["SimpleDoorKey"], seeds=[1, 2], total_timesteps=256,
                    teacher_episodes=3, workers=2, out=str(tmp_path / "runs"),
                    extra="--num-envs 2 --num-steps 64 --eval-episodes 2")
    run.main(args)
    summaries = sorted((tmp_path / "runs").glob("*/summary.json"))
    assert [path.parent.name for path in summaries] == [
        "SimpleDoorKey__ppo__1", "SimpleDoorKey__ppo__2", "SimpleDoorKey__teacher-rules__1",
        "SimpleDoorKey__teacher-rules__2"]
    assert json.loads(summaries[0].read_text())["frames"] == 256
    capsys.readouterr()
    run.main(args)
    assert "4 already done, 0 to go" in capsys.readouterr().out

    rows = report.main(report.Args(runs=[str(tmp_path / "runs")], out=str(tmp_path / "out"), name="R"))
    by_method = {row["method"]: row for row in rows}
    assert by_method["teacher+rules"]["final_success_mean"] == 1.0 and by_method["teacher+rules"]["seeds"] == 2
    assert by_method["ppo"]["seeds"] == 2 and by_method["ppo"]["sps_median"] > 0
    text = (tmp_path / "out/R.md").read_text()
    assert "| SimpleDoorKey | teacher+rules | 2 | 1.00 (1.00-1.00) | 1.00 | 1.00 |" in text and "r_curves.png" in text
    assert (tmp_path / "out/r_curves.png").stat().st_size > 1000


def test_gif_frames_come_from_minigrids_renderer_for_solved_episodes():
    from benchmarks.render_gifs import play
    from teacher_wrappers import Teacher

    class TeacherAsStudent:
        """Stands in for a trained student: acts like the rules teacher (argmax)."""

        teacher = Teacher("rules")

        def act(self, obs):
            return np.array([self.teacher.act([obs["image"][0]])[0][0].argmax()])

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
