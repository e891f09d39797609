"""Shared fixtures, and one persistent JAX compilation cache for the whole test run."""

import os

import pytest

# Test files in order of their time in a cold run on a 2-core CI machine (slowest first; measured,
# see the commit that set this order). xdist (`--dist loadfile --no-loadscope-reorder` in
# pyproject.toml) hands whole files to its workers in collection order, so the longest files
# start first and the short ones fill in at the end; by default xdist would order the files by
# how many tests they hold, which put the slowest files (few tests each) last, on one worker
# while the other sat idle. Files not listed run after these, in their usual order.
# test_runner.py goes first although test_envs.py takes longer: its smoke run compiles the tiny
# humanoid_run programs that test_jobs, test_finetune and test_save_faults then load from the cache.
SLOWEST_FIRST = (
    "test_navigate.py", "test_backflip.py", "test_runner.py", "test_envs.py", "test_offpolicy.py", "test_reach.py",
    "test_after_training.py", "test_balance.py", "test_walk.py", "test_sim2sim_randomized.py", "test_falls.py",
    "test_robust_locomotion.py", "test_jobs.py", "test_robot_spec.py", "test_jobs_faults.py", "test_parallel.py",
    "test_bad_input.py", "test_asymmetric_critic.py", "test_curriculum.py", "test_multiseed.py", "test_joystick.py",
    "test_nonfinite.py", "test_robustness.py", "test_randomization.py", "test_save_faults.py", "test_robot_task.py",
    "test_finetune.py", "test_resume.py", "test_rl_train.py", "test_robots.py", "test_checkpoint.py",
)


# The quick tier (`pytest -m quick`, under 5 minutes on 2 cores): every module of jaxhum exercised
# at least once, by the cheapest tests that do it. Whole files, or `file::test` (a parametrized
# test's cases all belong). The default run holds these and the rest; `--full` adds the tests
# marked `full` (slow end-to-end repeats of what cheaper tests check: see each one's reason).
QUICK = (
    # config, run config, schema; losses, networks, normalisation; the run log; checkpoints
    "test_config.py", "test_rl_losses.py", "test_rl_networks.py", "test_rl_normalization.py",
    "test_run_log.py", "test_checkpoint.py",
    # PPO's iteration and evaluation, curriculum rule, non-finite handling, the golden trainer
    "test_rl_train.py::test_iteration_shapes_finite_compiles_once_and_is_deterministic",
    "test_rl_train.py::test_evaluate_leaves_key_and_reports_terms",
    "test_curriculum.py::test_update_rule", "test_curriculum.py::test_a_task_must_provide_the_levels_it_declares",
    "test_nonfinite.py::test_ppo_iteration_with_a_planted_nan_stays_finite",
    "test_asymmetric_critic.py::test_symmetric_training_is_unchanged",
    # the training loop (a point-mass run), precompile, sharding's device check, bad input
    "test_runner.py::test_a_run_says_what_it_compiles_and_its_eta_leaves_out_compiling",
    "test_runner.py::test_precompile_compiles_from_shapes_in_the_background_and_reports_errors",
    "test_parallel.py::test_make_mesh_checks_the_device_count",
    "test_bad_input.py::test_inf_stop_at_eval_return_is_still_accepted",
    "test_bad_input.py::test_resume_completes_a_saved_partial_env",
    "test_finetune.py::test_missing_or_empty_source_is_refused",
    # sim, robots, the robot-task skeleton, every task's terms
    "test_envs.py::test_sim_model_on_plain_mjcf", "test_envs.py::test_weighted_sum_skips_zero_weights",
    "test_envs.py::test_config_is_frozen", "test_envs.py::test_reset_is_deterministic_and_noisy",
    "test_envs.py::test_to_brax_runs_under_brax_training_wrappers",
    "test_robots.py::test_index_resolves_names_in_action_order",
    "test_robots.py::test_native_foot_contacts_home_and_lifted",
    "test_robot_task.py::test_sizes_and_fields", "test_robot_task.py::test_no_task_module_imports_another",
    "test_walk.py::test_reward_terms_hand_derived", "test_walk.py::test_config_errors_name_the_field",
    "test_joystick.py::test_next_command_resamples_every_n_steps_from_the_key",
    "test_joystick.py::test_target_foot_height_and_pose_weights",
    "test_balance.py::test_balance_is_joystick_with_zero_commands_and_pushes",
    "test_balance.py::test_push_scale_multiplies_the_drawn_magnitude",
    "test_randomization.py::test_dotted_overrides_reach_the_randomization_config",
    "test_randomization.py::test_bad_settings_are_one_line_errors_naming_the_field",
    # after training: a tiny run evaluated, exported, run with numpy alone and in native MuJoCo; plots
    "test_after_training.py::test_summarize_against_hand_numbers", "test_after_training.py::test_evaluation_report",
    "test_after_training.py::test_deploy_runs_with_numpy_alone",
    "test_after_training.py::test_sim2sim_native_mujoco_matches_mjx",
    "test_after_training.py::test_video_frames_are_rendered",
    "test_after_training.py::test_plot_of_a_run_that_evaluated_only_at_its_end",
    "test_after_training.py::test_every_tool_asks_for_gpu_memory_on_demand_before_parsing",
    "test_robustness.py::test_cell_config_fixes_the_cells_values",
    # robust locomotion: the fall diagnosis by hand, native randomization's appliers, skeleton settings
    "test_sim2sim_randomized.py::test_action_delay_and_observation_path_by_hand",
    "test_falls.py::test_analyse_against_hand_numbers", "test_falls.py::test_a_task_without_pushes_is_refused",
    "test_robust_locomotion.py::test_bad_settings_are_refused_naming_the_field",
    "test_robust_locomotion.py::test_robot_precision_act_runs_every_matmul_in_full_float32",
    # the job service: its schema and its refusals
    "test_jobs.py::test_schema_lists_every_override_with_its_type_and_default",
    "test_jobs.py::test_bad_requests_are_refused_before_any_process_starts",
    # the eval world; off-policy replay and losses; reach's terms and success rule; robot specs
    "test_eval_env.py::test_eval_env_is_validated_completed_and_stable",
    "test_offpolicy.py::test_insert_wraps_around_and_counts_the_fill",
    "test_offpolicy.py::test_clipped_double_q_target_and_critic_loss_by_hand",
    "test_offpolicy.py::test_polyak_update_is_exact",
    "test_reach.py::test_reward_terms_by_hand", "test_reach.py::test_success_reached_in_time_and_held",
    "test_robot_spec.py::test_jh1_from_its_spec_equals_the_registered_record",
    "test_robot_spec.py::test_each_refusal_is_one_line_naming_the_element_and_the_fix",
    # navigate's and backflip's terms and rules by hand; the compile cache's folder and config field
    "test_navigate.py::test_reward_terms_by_hand", "test_navigate.py::test_goal_sampling_ranges_and_determinism",
    "test_backflip.py::test_reward_terms_against_hand_derived_values",
    "test_backflip.py::test_accumulated_rotation_unwraps_a_full_backward_turn_to_two_pi",
    "test_compile_cache.py::test_the_config_field_is_checked_in_one_line_and_may_change_on_resume",
)


def pytest_addoption(parser) -> None:
    parser.addoption("--full", action="store_true",
                     help="also run the full tier: slow end-to-end tests marked `full` (deselected by default)")


def _is_quick(item) -> bool:
    name = item.path.name
    test = item.originalname if hasattr(item, "originalname") else item.name
    return name in QUICK or f"{name}::{test}" in QUICK


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(SLOWEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.path.name, len(rank)))  # stable: each file keeps its order
    for item in items:
        if _is_quick(item):
            item.add_marker(pytest.mark.quick)
    if not config.getoption("--full"):
        skipped = [item for item in items if item.get_closest_marker("full")]
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = [item for item in items if not item.get_closest_marker("full")]


def pytest_configure(config) -> None:
    """Every test process (xdist workers and the subprocesses of `subprocess_env`) shares one
    persistent compilation cache in pytest's cache folder: many test files compile the same tiny
    runs of the same tasks, and on a 2-core CI machine compiling is most of the suite's time."""
    import jax

    cache = config.cache.mkdir("jax_compilation_cache")
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", -1)


@pytest.fixture(scope="session")
def subprocess_env(request) -> dict[str, str]:
    """Environment for test subprocesses: CPU JAX sharing one persistent compilation cache.

    The cache lives in pytest's cache folder, so processes that compile the same functions (and
    later test runs) reuse each other's compiles.
    """
    cache = request.config.cache.mkdir("jax_compilation_cache")
    env = dict(os.environ)
    env.update(
        JAX_COMPILATION_CACHE_DIR=str(cache),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="-1",
        JAX_PLATFORMS="cpu",
        CI="1",
    )
    return env
