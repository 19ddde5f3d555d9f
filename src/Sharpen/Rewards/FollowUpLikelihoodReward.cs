using Sharpen.Models;
using Sharpen.Tokenizers;

namespace Sharpen.Rewards;

/// <summary>
/// Follow-up Likelihood as Reward (FLR; Zhang et al. 2024, "Aligning Language Models Using Follow-up Likelihood as
/// Reward Signal", arXiv:2409.13948): a response is good when a user would likely answer it with a positive follow-up
/// ("Thanks, that is right.") and unlikely with a negative one ("That is wrong."). With a frozen language model π,
/// r(x, y) = mean_{f ∈ F+} log π(f | x, y, u) − mean_{f ∈ F−} log π(f | x, y, u), each log-likelihood the per-token mean
/// (follow-ups differ in length), u the user-turn marker (<see cref="UserTurn"/>).
/// Departures: the follow-up lists are our short defaults (pass the paper's or your own), and the context is plain text
/// (prompt, response, marker), not a chat template; the paper fine-tunes the scoring model on natural-language feedback,
/// which here is simply "pass a model trained so".
/// </summary>
public sealed class FollowUpLikelihoodReward : IRewardFunction, IDisposable
{
    /// <summary>Default positive follow-ups.</summary>
    public static readonly IReadOnlyList<string> DefaultPositive = ["Thanks, that is right.", "Great, that helps.", "Perfect, thank you."];
    /// <summary>Default negative follow-ups.</summary>
    public static readonly IReadOnlyList<string> DefaultNegative = ["That is wrong.", "No, that does not answer my question.", "That is not what I asked."];

    readonly SelfLikelihoodReward _lm;

    /// <summary>Scores with <paramref name="model"/> (frozen; <paramref name="ownsModel"/> disposes it with the reward).</summary>
    public FollowUpLikelihoodReward(CausalLM model, ITokenizer tokenizer, IReadOnlyList<string>? positive = null, IReadOnlyList<string>? negative = null,
        string userTurn = "\nUser: ", bool ownsModel = false, int microBatch = 16, string name = "flr")
    {
        Positive = positive ?? DefaultPositive;
        Negative = negative ?? DefaultNegative;
        if (Positive.Count == 0 || Negative.Count == 0) throw new ArgumentException("FLR needs at least one positive and one negative follow-up");
        (UserTurn, Name) = (userTurn, name);
        _lm = new SelfLikelihoodReward(model, tokenizer, normalize: true, ownsModel, microBatch, name);
    }

    /// <inheritdoc />
    public string Name { get; }
    /// <summary>Positive follow-ups F+.</summary>
    public IReadOnlyList<string> Positive { get; }
    /// <summary>Negative follow-ups F−.</summary>
    public IReadOnlyList<string> Negative { get; }
    /// <summary>Text between the response and the follow-up (the user's next turn begins).</summary>
    public string UserTurn { get; }

    /// <summary>The context a follow-up is scored after: prompt, response, user-turn marker.</summary>
    public string Context(string prompt, string response) => prompt + response + UserTurn;

    /// <summary>FLR of each (prompt, response).</summary>
    public double[] Score(IReadOnlyList<(string Prompt, string Response)> items)
    {
        var follow = Positive.Concat(Negative).ToList();
        var queries = new List<(string, string)>(items.Count * follow.Count);
        foreach (var (p, r) in items) foreach (var f in follow) queries.Add((Context(p, r), f));
        var lp = _lm.Score(queries);
        var result = new double[items.Count];
        for (int i = 0; i < items.Count; i++)
            result[i] = Combine(lp.AsSpan(i * follow.Count, Positive.Count), lp.AsSpan(i * follow.Count + Positive.Count, Negative.Count));
        return result;
    }

    /// <summary>mean(positive log-likelihoods) − mean(negative log-likelihoods).</summary>
    public static double Combine(ReadOnlySpan<double> positive, ReadOnlySpan<double> negative)
    {
        if (positive.Length == 0 || negative.Length == 0) throw new ArgumentException("FLR needs at least one positive and one negative follow-up");
        double p = 0, n = 0;
        foreach (var v in positive) p += v;
        foreach (var v in negative) n += v;
        return p / positive.Length - n / negative.Length;
    }

    /// <inheritdoc />
    public ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        return ValueTask.FromResult(Score([.. batch.Select(c => (c.Prompt, c.Completion))]).Select(x => (double?)x).ToArray());
    }

    /// <inheritdoc />
    public void Dispose() => _lm.Dispose();
}
