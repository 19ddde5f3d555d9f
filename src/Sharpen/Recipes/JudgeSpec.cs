namespace Sharpen.Recipes;

/// <summary>
/// The <c>judge</c> section of an online preference recipe: an LLM judge behind an OpenAI-compatible URL (vLLM, SGLang,
/// <c>sharpen serve</c>) that replaces the reward-based pair rule with pairwise preferences
/// (<c>OnlineDpoTrainer.PairwiseJudge</c>; the CLI asks it through <c>Sharpen.Serving.ChatJudge</c>). Its P(first ≻ second)
/// is also the pair's strength that the <c>osp</c> loss reads. The <c>rewards</c> are then only logged.
/// </summary>
public sealed record JudgeSpec
{
    /// <summary>Base URL of the OpenAI-compatible API, e.g. <c>http://127.0.0.1:8000/v1</c>. Required.</summary>
    public string Url { get; init; } = "";
    /// <summary>Model name sent with each request.</summary>
    public string Model { get; init; } = "default";
    /// <summary>Environment variable holding the API key (null: no key; servers on loopback rarely need one).</summary>
    public string? ApiKeyEnv { get; init; }
    /// <summary>Ask each pair in both orders against position bias.</summary>
    public bool SwapOrder { get; init; } = true;
    /// <summary>SRAIF's self-reference: the judge answers each prompt first and judges against its own answer.</summary>
    public bool SelfReference { get; init; }
    /// <summary>SRAIF's critique step: the judge criticises both answers (against the reference) before each verdict and
    /// decides from its critique; with <see cref="SelfReference"/> this is SRAIF's whole pipeline.</summary>
    public bool Critique { get; init; }
    /// <summary>The principle the judge applies (null: <see cref="Rewards.JudgeProtocol.DefaultPrinciple"/>).</summary>
    public string? Principle { get; init; }
    /// <summary>Most tokens of a judge's reply.</summary>
    public int MaxTokens { get; init; } = 256;

    /// <summary>Throws <see cref="ArgumentException"/> naming the first bad key as <c>judge.&lt;key&gt;</c>.</summary>
    public JudgeSpec Validate()
    {
        if (!Uri.TryCreate(Url, UriKind.Absolute, out var u) || (u.Scheme != "http" && u.Scheme != "https"))
            throw new ArgumentException($"judge.url must be an absolute http(s) URL of an OpenAI-compatible API (e.g. http://127.0.0.1:8000/v1), got '{Url}'");
        if (string.IsNullOrWhiteSpace(Model)) throw new ArgumentException("judge.model must not be empty");
        if (MaxTokens < 1) throw new ArgumentException($"judge.max_tokens must be ≥ 1, got {MaxTokens}");
        return this;
    }
}
