using System.Collections.Concurrent;
using Microsoft.Extensions.AI;
using Sharpen.Rewards;

namespace Sharpen.Serving;

/// <summary>Options of a <see cref="ChatJudge"/>.</summary>
public sealed record ChatJudgeOptions
{
    /// <summary>Ask every pair in both orders and combine them (<see cref="JudgeProtocol.CombineSwapped"/>) against
    /// position bias. Default true.</summary>
    public bool SwapOrder { get; init; } = true;
    /// <summary>SRAIF's self-reference: the judge first answers the instruction itself (once per instruction, cached) and
    /// judges with its own answer as the reference. Default false.</summary>
    public bool SelfReference { get; init; }
    /// <summary>SRAIF's critique step: for each order the judge first criticises both answers (against the reference when
    /// there is one: the self-reference or a gold answer), then gives its verdict from that critique
    /// (<see cref="JudgeProtocol.CritiquePrompt"/>, <see cref="JudgeProtocol.CritiquedPairwisePrompt"/>): two requests per
    /// order instead of one. Default false.</summary>
    public bool Critique { get; init; }
    /// <summary>The principle the judge applies (SRAIF's "general principle").</summary>
    public string Principle { get; init; } = JudgeProtocol.DefaultPrinciple;
    /// <summary>Pointwise scale, lowest score.</summary>
    public int ScoreMin { get; init; } = 1;
    /// <summary>Pointwise scale, highest score.</summary>
    public int ScoreMax { get; init; } = 10;
    /// <summary>Sampling of the judge's replies (default temperature 0, at most 256 tokens).</summary>
    public ChatOptions Chat { get; init; } = new() { Temperature = 0, MaxOutputTokens = 256 };

    /// <summary>SRAIF's pipeline (arXiv:2406.11190): self-reference answer, critique against it, verdict from the critique,
    /// both answer orders (self-consistency), under <see cref="JudgeProtocol.DefaultPrinciple"/>.</summary>
    public static ChatJudgeOptions Sraif() => new() { SelfReference = true, Critique = true, SwapOrder = true };
}

/// <summary>
/// An LLM judge over any Microsoft.Extensions.AI <see cref="IChatClient"/>: an OpenAI-compatible server (vLLM, SGLang,
/// <c>sharpen serve</c>) through the OpenAI adapter, or a checkpoint in process through <see cref="PolicyChatClient"/>.
/// It speaks <see cref="JudgeProtocol"/>: pairwise preferences (both orders by default), pointwise scores as a reward
/// (<see cref="IRewardFunction"/>, score mapped to [0, 1]), and step labels. A reply that does not parse is the
/// failure value — no preference (pairwise: null, ½ through <see cref="AsPairwiseJudge"/>), no score (null: "not
/// applicable"), no labels (null) — and is counted in <see cref="Failures"/>; it never becomes a guess.
/// </summary>
public sealed class ChatJudge : IRewardFunction
{
    readonly IChatClient _client;
    readonly ConcurrentDictionary<string, Task<string>> _selfAnswers = new();
    int _calls, _failures, _inconsistent;

    /// <summary>A judge asking <paramref name="client"/>.</summary>
    public ChatJudge(IChatClient client, ChatJudgeOptions? options = null, string name = "judge")
    {
        _client = client ?? throw new ArgumentNullException(nameof(client));
        Options = options ?? new();
        if (Options.ScoreMax <= Options.ScoreMin) throw new ArgumentOutOfRangeException(nameof(options), $"ScoreMax ({Options.ScoreMax}) must be > ScoreMin ({Options.ScoreMin})");
        Name = name;
    }

    /// <inheritdoc />
    public string Name { get; }
    /// <summary>The options it was made with.</summary>
    public ChatJudgeOptions Options { get; }
    /// <summary>Requests sent to the model so far (self-reference answers included).</summary>
    public int Calls => _calls;
    /// <summary>Judgements whose reply did not parse.</summary>
    public int Failures => _failures;
    /// <summary>Pairs whose two orders disagreed (the position-biased cases; their preference is ½).</summary>
    public int Inconsistent => _inconsistent;

    async Task<string> AskAsync(string prompt, CancellationToken ct)
    {
        Interlocked.Increment(ref _calls);
        var response = await _client.GetResponseAsync([new ChatMessage(ChatRole.User, prompt)], Options.Chat.Clone(), ct).ConfigureAwait(false);
        return response.Text;
    }

    /// <summary>The judge's own answer to <paramref name="instruction"/> (SRAIF), asked once per instruction.</summary>
    public Task<string> SelfAnswerAsync(string instruction, CancellationToken ct = default) =>
        _selfAnswers.GetOrAdd(instruction, i => AskAsync(JudgeProtocol.SelfAnswerPrompt(i), ct));

    async Task<string?> ReferenceAsync(string instruction, string? reference, CancellationToken ct) =>
        reference ?? (Options.SelfReference ? await SelfAnswerAsync(instruction, ct).ConfigureAwait(false) : null);

    /// <summary>
    /// P(<paramref name="first"/> ≻ <paramref name="second"/>) for <paramref name="instruction"/>: 1, 0 or ½ from one
    /// order, or the mean over both orders with <see cref="ChatJudgeOptions.SwapOrder"/>; null when a reply did not parse.
    /// A <paramref name="reference"/> (e.g. a gold answer) overrides the self-reference.
    /// </summary>
    public async Task<double?> PreferAsync(string instruction, string first, string second, string? reference = null, CancellationToken ct = default)
    {
        var r = await ReferenceAsync(instruction, reference, ct).ConfigureAwait(false);
        var ab = VerdictReplyAsync(instruction, first, second, r, ct);
        if (!Options.SwapOrder)
        {
            var v = JudgeProtocol.Single(JudgeProtocol.ParsePairwise(await ab.ConfigureAwait(false)));
            if (v is null) Interlocked.Increment(ref _failures);
            return v;
        }
        var ba = VerdictReplyAsync(instruction, second, first, r, ct);
        var (v1, v2) = (JudgeProtocol.ParsePairwise(await ab.ConfigureAwait(false)), JudgeProtocol.ParsePairwise(await ba.ConfigureAwait(false)));
        var p = JudgeProtocol.CombineSwapped(v1, v2);
        if (p is null) Interlocked.Increment(ref _failures);
        else if (p == 0.5 && v1 != PairVerdict.Tie && v2 != PairVerdict.Tie) Interlocked.Increment(ref _inconsistent);
        return p;
    }

    /// <summary>The verdict reply for one order: straight from the pairwise prompt, or with <see cref="ChatJudgeOptions.Critique"/>
    /// from the critique the judge wrote first (SRAIF).</summary>
    async Task<string> VerdictReplyAsync(string instruction, string shownFirst, string shownSecond, string? reference, CancellationToken ct)
    {
        if (!Options.Critique) return await AskAsync(JudgeProtocol.PairwisePrompt(instruction, shownFirst, shownSecond, reference, Options.Principle), ct).ConfigureAwait(false);
        var critique = await AskAsync(JudgeProtocol.CritiquePrompt(instruction, shownFirst, shownSecond, reference), ct).ConfigureAwait(false);
        return await AskAsync(JudgeProtocol.CritiquedPairwisePrompt(instruction, shownFirst, shownSecond, critique, Options.Principle), ct).ConfigureAwait(false);
    }

    /// <summary>
    /// The judge as the online DPO trainer's general preference oracle (<c>OnlineDpoTrainer.PairwiseJudge</c>):
    /// (prompt, first, second) → P(first ≻ second); a failed parse gives ½ (no pair) and is counted.
    /// </summary>
    public Func<string, string, string, double> AsPairwiseJudge(CancellationToken ct = default) =>
        (prompt, first, second) => PreferAsync(prompt, first, second, null, ct).GetAwaiter().GetResult() ?? 0.5;

    /// <summary>The pointwise score of <paramref name="answer"/> in [0, 1] ((N − min)/(max − min)); null when the reply did not parse.</summary>
    public async Task<double?> ScoreOneAsync(string instruction, string answer, string? reference = null, CancellationToken ct = default)
    {
        var r = await ReferenceAsync(instruction, reference, ct).ConfigureAwait(false);
        var reply = await AskAsync(JudgeProtocol.PointwisePrompt(instruction, answer, Options.ScoreMin, Options.ScoreMax, r, Options.Principle), ct).ConfigureAwait(false);
        var s = JudgeProtocol.ParsePointwise(reply, Options.ScoreMin, Options.ScoreMax);
        if (s is null) Interlocked.Increment(ref _failures);
        return s;
    }

    /// <summary>Pointwise scores of a batch, concurrently; a row's <c>reference</c> field, when present, is the reference.</summary>
    public async ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default) =>
        await Task.WhenAll(batch.Select(c => ScoreOneAsync(c.Prompt, c.Completion, c.Fields.GetValueOrDefault("reference"), cancel))).ConfigureAwait(false);

    /// <summary>The judge's step labels (true = correct) of a solution's steps; null when the reply did not parse.</summary>
    public async Task<bool[]?> StepLabelsAsync(string instruction, IReadOnlyList<string> steps, string? reference = null, CancellationToken ct = default)
    {
        var reply = await AskAsync(JudgeProtocol.StepLabelPrompt(instruction, steps, reference), ct).ConfigureAwait(false);
        var labels = JudgeProtocol.ParseStepLabels(reply, steps.Count);
        if (labels is null) Interlocked.Increment(ref _failures);
        return labels;
    }

    /// <summary>GenPRM's generative verification of step <paramref name="index"/>: (correct?, the judge's rationale); correct
    /// is null when the reply did not parse (counted in <see cref="Failures"/>).</summary>
    public async Task<(bool? Correct, string Rationale)> VerifyStepAsync(string instruction, IReadOnlyList<string> steps, int index, string? reference = null, CancellationToken ct = default)
    {
        var reply = await AskAsync(JudgeProtocol.StepVerifyPrompt(instruction, steps, index, reference), ct).ConfigureAwait(false);
        var v = JudgeProtocol.ParseStepJudgement(reply);
        if (v is null) Interlocked.Increment(ref _failures);
        return (v, reply);
    }

    /// <summary>Step labels from the first-error prompt (<see cref="JudgeProtocol.FirstErrorPrompt"/>); null when the reply did not parse.</summary>
    public async Task<bool[]?> FirstErrorLabelsAsync(string instruction, IReadOnlyList<string> steps, string? reference = null, CancellationToken ct = default)
    {
        var reply = await AskAsync(JudgeProtocol.FirstErrorPrompt(instruction, steps, reference), ct).ConfigureAwait(false);
        var labels = JudgeProtocol.ParseFirstError(reply, steps.Count);
        if (labels is null) Interlocked.Increment(ref _failures);
        return labels;
    }

    /// <summary>AURORA's reverse verification: whether the solution's final answer agrees with <paramref name="reference"/>;
    /// null when the reply did not parse.</summary>
    public async Task<bool?> MatchesReferenceAsync(string instruction, IReadOnlyList<string> steps, string reference, CancellationToken ct = default)
    {
        var reply = await AskAsync(JudgeProtocol.ReverseVerifyPrompt(instruction, steps, reference), ct).ConfigureAwait(false);
        var v = JudgeProtocol.ParseMatchesReference(reply);
        if (v is null) Interlocked.Increment(ref _failures);
        return v;
    }
}
