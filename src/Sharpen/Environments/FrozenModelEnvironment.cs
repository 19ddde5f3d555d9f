using System.Globalization;
using System.Text.Json.Serialization;
using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Environments;

/// <summary>Options shared by the environments with a frozen model inside (<see cref="DspEnvironment"/>, <see cref="DaslamEnvironment"/>).</summary>
public abstract record FrozenEnvironmentOptions : EnvironmentOptions
{
    /// <summary>The verifiable task by registry name (<see cref="TaskRegistry"/>). Default <c>countdown</c>.</summary>
    public string Task { get; init; } = "countdown";
    /// <summary>The task's options, or null for its defaults (a recipe sets them from <c>env.task</c>'s keys).</summary>
    [JsonIgnore] public TaskOptions? TaskOptions { get; init; }
    /// <summary>Where the frozen model lives (a recipe's <c>env.frozen</c>); <c>EnvironmentSource</c> opens it once.</summary>
    public FrozenModelSpec? Frozen { get; init; }
    /// <summary>The opened frozen model every instance shares (set from code, or by <c>EnvironmentSource</c>).</summary>
    [JsonIgnore] public FrozenModel? Model { get; init; }
    /// <summary>Always 1: the policy writes once, the frozen model answers, the answer is verified.</summary>
    public override int MaxTurns { get; init; } = 1;

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        if (MaxTurns != 1) throw new ArgumentOutOfRangeException(nameof(MaxTurns), "an environment with a frozen model has exactly one policy turn");
        ArgumentException.ThrowIfNullOrWhiteSpace(Task);
        Frozen?.Validate();
    }

    internal static void NeedsPlaceholders(string name, string template, params string[] placeholders)
    {
        foreach (var p in placeholders)
            if (!template.Contains(p, StringComparison.Ordinal)) throw new ArgumentException($"{name} must contain {p}, got '{template}'");
    }
}

/// <summary>Options of <see cref="DspEnvironment"/>.</summary>
public sealed record DspOptions : FrozenEnvironmentOptions
{
    /// <summary>What the frozen model is asked: <c>{prompt}</c> is the task's prompt, <c>{hint}</c> the policy's message
    /// (trimmed). Default <c>"Hint: {hint}\n{prompt}"</c> (the prompt last, so a model trained on bare prompts continues it).</summary>
    public string Template { get; init; } = "Hint: {hint}\n{prompt}";

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        NeedsPlaceholders("dsp template", Template, "{hint}", "{prompt}");
    }
}

/// <summary>Options of <see cref="DaslamEnvironment"/>.</summary>
public sealed record DaslamOptions : FrozenEnvironmentOptions
{
    /// <summary>Most sub-questions put to the solver; further ones are dropped (info <c>dropped</c>). Default 3.</summary>
    public int MaxSubQuestions { get; init; } = 3;
    /// <summary>What separates the sub-questions in the policy's message (its turn ends at a newline). Default <c>;</c>.</summary>
    public string Separator { get; init; } = ";";
    /// <summary>The solver's first message when there are sub-questions: <c>{prompt}</c> and the first <c>{question}</c>.</summary>
    public string FirstTemplate { get; init; } = "{prompt}\nFirst: {question}";
    /// <summary>Each further sub-question, asked after the solver answered the previous one.</summary>
    public string QuestionTemplate { get; init; } = "Next: {question}";
    /// <summary>The last message, whose answer is verified: <c>{prompt}</c> is the task's prompt (alone when there are no sub-questions).</summary>
    public string FinalTemplate { get; init; } = "Now answer: {prompt}";

    /// <inheritdoc />
    public override void Validate()
    {
        base.Validate();
        ArgumentOutOfRangeException.ThrowIfLessThan(MaxSubQuestions, 0);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(MaxSubQuestions, 16);
        ArgumentException.ThrowIfNullOrEmpty(Separator);
        NeedsPlaceholders("daslam first_template", FirstTemplate, "{prompt}", "{question}");
        NeedsPlaceholders("daslam question_template", QuestionTemplate, "{question}");
        NeedsPlaceholders("daslam final_template", FinalTemplate, "{prompt}");
    }
}

/// <summary>
/// Base of the environments with a frozen model inside: the observation is a task's prompt, the policy writes one
/// message, and the frozen model answers in a short conversation the environment builds from it (<see cref="Plan"/>:
/// the user messages, each sent after the model answered the previous one); the model's last answer is verified by the
/// task's verifier and its reward is the policy's. One policy turn; reward = the verdict's reward; info <c>outcome</c>
/// (won/lost), <c>reason</c>, <c>frozen_answer</c>, <c>frozen_requests</c>. Never throws on the policy's text.
/// Instances that share a <see cref="FrozenModel"/> are stepped together by <see cref="MultiTurnRollout"/>: one batched
/// model call per round of the conversation for all of them.
/// </summary>
public abstract class FrozenModelEnvironment : IBatchSteppedEnvironment
{
    readonly IVerifiableTask _task;
    Problem? _problem;
    bool _running;

    /// <summary>An environment over <paramref name="task"/> with <paramref name="model"/> answering.</summary>
    protected FrozenModelEnvironment(IVerifiableTask task, FrozenModel model, string extraCharacters)
    {
        ArgumentNullException.ThrowIfNull(task);
        ArgumentNullException.ThrowIfNull(model);
        (_task, Model) = (task, model);
        Alphabet = new string(task.Alphabet.Concat(extraCharacters).Concat(TranscriptRenderer.PlainCharacters).Distinct().Order().ToArray());
    }

    /// <summary>The frozen model.</summary>
    public FrozenModel Model { get; }
    /// <summary>The task.</summary>
    public IVerifiableTask Task => _task;
    /// <summary>The current problem.</summary>
    public Problem? Problem => _problem;

    /// <inheritdoc />
    public abstract string Name { get; }
    /// <inheritdoc />
    public string Alphabet { get; }
    /// <inheritdoc />
    public IEnvironmentBatchStepper BatchStepper => Model.Stepper;

    /// <inheritdoc />
    public ValueTask<IReadOnlyList<ChatMessage>> ResetAsync(int seed, CancellationToken cancellationToken = default)
    {
        cancellationToken.ThrowIfCancellationRequested();
        _problem = _task.Generate(1, seed)[0];
        _running = true;
        return ValueTask.FromResult<IReadOnlyList<ChatMessage>>([new ChatMessage("user", _problem.Prompt)]);
    }

    /// <inheritdoc />
    public async ValueTask<EnvironmentStep> StepAsync(string action, CancellationToken cancellationToken = default) =>
        (await Model.Stepper.StepAsync([this], [action], cancellationToken).ConfigureAwait(false))[0];

    /// <summary>The user messages the frozen model is sent, in order, for the policy's <paramref name="action"/> (at least one).</summary>
    protected abstract IReadOnlyList<string> Plan(Problem problem, string action, Dictionary<string, string> info);

    internal IReadOnlyList<string> Begin(string? action, Dictionary<string, string> info)
    {
        if (!_running) throw new InvalidOperationException($"environment '{Name}': Step called with no episode running (call Reset first; an episode ends when a step returns done)");
        _running = false;
        var plan = Plan(_problem!, action ?? "", info);
        if (plan.Count == 0) throw new InvalidOperationException($"environment '{Name}': the plan sends the frozen model nothing");
        return plan;
    }

    internal EnvironmentStep Finish(string answer, Dictionary<string, string> info)
    {
        var verdict = _task.Verify(_problem!, answer);
        info["outcome"] = verdict.Correct ? "won" : "lost";
        info["reason"] = verdict.Reason;
        info["frozen_answer"] = answer;
        return new EnvironmentStep([], verdict.Reward, true, info);
    }

    /// <summary><paramref name="template"/> with <c>{prompt}</c>, <c>{hint}</c>, <c>{question}</c> filled in.</summary>
    protected static string Fill(string template, string prompt, string? hint = null, string? question = null) =>
        template.Replace("{prompt}", prompt, StringComparison.Ordinal).Replace("{hint}", hint ?? "", StringComparison.Ordinal)
            .Replace("{question}", question ?? "", StringComparison.Ordinal);

    /// <summary>The task of <paramref name="options"/>, and its frozen model (which must be opened already).</summary>
    protected static (IVerifiableTask Task, FrozenModel Model) From(string name, FrozenEnvironmentOptions options)
    {
        options.Validate();
        var model = options.Model ?? throw new ArgumentException(
            $"environment '{name}' needs a frozen model: set Model (opened once and shared), e.g. from FrozenModelSpec.Open() or a recipe's env.frozen: {{checkpoint: DIR}} / {{url: ..., model: ...}}");
        return (TaskRegistry.Create(options.Task, options.TaskOptions), model);
    }
}

/// <summary>
/// Directional Stimulus Prompting (Li et al. 2023, arXiv:2302.11520) on a verifiable task: the policy reads the task's
/// prompt and writes a hint (the "directional stimulus"); the frozen model is asked <see cref="DspOptions.Template"/>
/// (by default <c>"Hint: {hint}\n{prompt}"</c>) in one request; its answer is verified and the verdict's reward is the
/// policy's. The paper trains a small T5 policy (SFT, then PPO) to steer a black-box LLM; here any frozen
/// <see cref="FrozenModel"/> plays the LLM.
/// </summary>
public sealed class DspEnvironment : FrozenModelEnvironment
{
    /// <summary>DSP over <see cref="FrozenEnvironmentOptions.Task"/> with <see cref="FrozenEnvironmentOptions.Model"/>.</summary>
    public DspEnvironment(DspOptions options) : this(From("dsp", options ?? throw new ArgumentNullException(nameof(options))), options) { }

    /// <summary>DSP over <paramref name="task"/> with <paramref name="model"/>.</summary>
    public DspEnvironment(IVerifiableTask task, FrozenModel model, DspOptions? options = null) : this((task, model), options ?? new DspOptions { Task = task.Name }) { }

    DspEnvironment((IVerifiableTask Task, FrozenModel Model) tm, DspOptions options) : base(tm.Task, tm.Model, "")
    {
        options.Validate();
        Options = options;
    }

    /// <summary>The options.</summary>
    public DspOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "dsp";

    /// <inheritdoc />
    protected override IReadOnlyList<string> Plan(Problem problem, string action, Dictionary<string, string> info)
    {
        var hint = action.Trim();
        info["hint_chars"] = hint.Length.ToString(CultureInfo.InvariantCulture);
        return [Fill(Options.Template, problem.Prompt, hint: hint)];
    }
}

/// <summary>
/// DaSLaM (Juneja et al. 2023, arXiv:2310.18338) on a verifiable task: the policy reads the task's prompt and writes
/// sub-questions separated by <see cref="DaslamOptions.Separator"/>; the frozen solver answers them one by one in one
/// conversation (the first with the prompt: <see cref="DaslamOptions.FirstTemplate"/>, then
/// <see cref="DaslamOptions.QuestionTemplate"/>), then the original question (<see cref="DaslamOptions.FinalTemplate"/>);
/// that last answer is verified and its reward is the policy's. Empty sub-questions are skipped; none at all means the
/// solver answers the question directly. Each round of the conversation is one batched call for every environment still
/// in it. Info: <c>sub_questions</c>, <c>dropped</c>.
/// </summary>
public sealed class DaslamEnvironment : FrozenModelEnvironment
{
    /// <summary>DaSLaM over <see cref="FrozenEnvironmentOptions.Task"/> with <see cref="FrozenEnvironmentOptions.Model"/>.</summary>
    public DaslamEnvironment(DaslamOptions options) : this(From("daslam", options ?? throw new ArgumentNullException(nameof(options))), options) { }

    /// <summary>DaSLaM over <paramref name="task"/> with <paramref name="model"/>.</summary>
    public DaslamEnvironment(IVerifiableTask task, FrozenModel model, DaslamOptions? options = null) : this((task, model), options ?? new DaslamOptions { Task = task.Name }) { }

    DaslamEnvironment((IVerifiableTask Task, FrozenModel Model) tm, DaslamOptions options) : base(tm.Task, tm.Model, options.Separator)
    {
        options.Validate();
        Options = options;
    }

    /// <summary>The options.</summary>
    public DaslamOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "daslam";

    /// <summary>The sub-questions of <paramref name="action"/>: split at the separator, trimmed, empty ones dropped.</summary>
    public IReadOnlyList<string> SubQuestions(string action) =>
        action.Split(Options.Separator).Select(q => q.Trim()).Where(q => q.Length > 0).ToArray();

    /// <inheritdoc />
    protected override IReadOnlyList<string> Plan(Problem problem, string action, Dictionary<string, string> info)
    {
        var all = SubQuestions(action);
        var asked = all.Take(Options.MaxSubQuestions).ToArray();
        info["sub_questions"] = asked.Length.ToString(CultureInfo.InvariantCulture);
        info["dropped"] = (all.Count - asked.Length).ToString(CultureInfo.InvariantCulture);
        var plan = new List<string>();
        for (int i = 0; i < asked.Length; i++)
            plan.Add(i == 0 ? Fill(Options.FirstTemplate, problem.Prompt, question: asked[i]) : Fill(Options.QuestionTemplate, problem.Prompt, question: asked[i]));
        plan.Add(Fill(Options.FinalTemplate, problem.Prompt));
        return plan;
    }
}

/// <summary>
/// Steps the environments that share one <see cref="FrozenModel"/>: every environment's plan is played in rounds, round k
/// sending each environment's k-th message (with its conversation so far) in one batched <see cref="FrozenModel.AnswerAsync"/>;
/// environments whose plan is over drop out of the later rounds.
/// </summary>
sealed class FrozenBatchStepper(FrozenModel model) : IEnvironmentBatchStepper
{
    public async Task<IReadOnlyList<EnvironmentStep>> StepAsync(IReadOnlyList<IBatchSteppedEnvironment> environments, IReadOnlyList<string> actions,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(environments);
        ArgumentNullException.ThrowIfNull(actions);
        if (environments.Count != actions.Count) throw new ArgumentException($"{environments.Count} environments but {actions.Count} actions");
        var envs = environments.Select(e => e is FrozenModelEnvironment f && ReferenceEquals(f.Model, model) ? f
            : throw new ArgumentException($"environment '{e.Name}' does not use this frozen model")).ToArray();
        var infos = envs.Select(_ => new Dictionary<string, string>()).ToArray();
        var plans = envs.Select((e, i) => e.Begin(actions[i], infos[i])).ToArray();
        var conversations = envs.Select(_ => new List<ChatMessage>()).ToArray();
        var last = new string[envs.Length];
        for (int round = 0; ; round++)
        {
            var live = Enumerable.Range(0, envs.Length).Where(i => round < plans[i].Count).ToArray();
            if (live.Length == 0) break;
            foreach (var i in live) conversations[i].Add(new ChatMessage("user", plans[i][round]));
            var replies = await model.AnswerAsync(live.Select(i => (IReadOnlyList<ChatMessage>)conversations[i].ToArray()).ToArray(), cancellationToken).ConfigureAwait(false);
            for (int j = 0; j < live.Length; j++)
            {
                conversations[live[j]].Add(new ChatMessage("assistant", replies[j].Text));
                last[live[j]] = replies[j].Text;
            }
        }
        return envs.Select((e, i) =>
        {
            infos[i]["frozen_requests"] = plans[i].Count.ToString(CultureInfo.InvariantCulture);
            return e.Finish(last[i], infos[i]);
        }).ToArray();
    }
}
