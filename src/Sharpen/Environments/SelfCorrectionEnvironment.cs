using System.Globalization;
using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Environments;

/// <summary>
/// Self-correction over any verifiable task (SCoRe's setting, arXiv:2409.12917): the task's prompt; the policy answers;
/// the environment says "check your answer and revise"; the policy answers again, and that second attempt is scored.
/// Rewards: 0 for the first turn, the task's verdict reward for the second. Both attempts are reported in the info of
/// the second turn (<c>first_correct</c>, <c>second_correct</c>, <c>first_reward</c>, <c>second_reward</c>, <c>reason</c>),
/// so SCoRe's stage II can shape the second reward with the first (α·(r₂ − r₁)); the first turn's info has
/// <c>first_correct</c> and <c>first_reward</c>.
/// </summary>
public sealed class SelfCorrectionEnvironment : TextEnvironment
{
    readonly IVerifiableTask _task;
    Problem? _problem;
    Verdict? _first;

    /// <summary>Self-correction on the task <see cref="SelfCorrectionOptions.Task"/> (by registry name).</summary>
    public SelfCorrectionEnvironment(SelfCorrectionOptions? options = null)
        : this(TaskRegistry.Create((options ?? new SelfCorrectionOptions()).Task, options?.TaskOptions), options) { }

    /// <summary>Self-correction on <paramref name="task"/>.</summary>
    public SelfCorrectionEnvironment(IVerifiableTask task, SelfCorrectionOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(task);
        Options = options ?? new SelfCorrectionOptions { Task = task.Name };
        Options.Validate();
        _task = task;
        Alphabet = AlphabetOf(task.Alphabet, Options.Instruction);
    }

    /// <summary>The options.</summary>
    public SelfCorrectionOptions Options { get; }

    /// <summary>The task.</summary>
    public IVerifiableTask Task => _task;

    /// <inheritdoc />
    public override string Name => "self-correction";

    /// <inheritdoc />
    public override string Alphabet { get; }

    /// <summary>The current problem.</summary>
    public Problem? Problem => _problem;

    /// <inheritdoc />
    protected override IReadOnlyList<ChatMessage> OnReset(int seed)
    {
        _problem = _task.Generate(1, seed)[0];
        _first = null;
        return User(_problem.Prompt);
    }

    /// <inheritdoc />
    protected override EnvironmentStep OnStep(string action)
    {
        var verdict = _task.Verify(_problem!, action);
        if (Turns == 1)
        {
            _first = verdict;
            return new EnvironmentStep(User(Options.Instruction), 0, false, new Dictionary<string, string>
            {
                ["first_correct"] = Bool(verdict.Correct), ["first_reward"] = Num(verdict.Reward),
            });
        }
        return new EnvironmentStep([], verdict.Reward, true, new Dictionary<string, string>
        {
            ["first_correct"] = Bool(_first!.Correct), ["second_correct"] = Bool(verdict.Correct),
            ["first_reward"] = Num(_first.Reward), ["second_reward"] = Num(verdict.Reward), ["reason"] = verdict.Reason,
            ["outcome"] = verdict.Correct ? "won" : "lost",
        });
    }

    static string Bool(bool b) => b ? "true" : "false";
    static string Num(double x) => x.ToString("R", CultureInfo.InvariantCulture);
}
