using Sharpen.Data;
using Sharpen.Tokenizers;

namespace Sharpen.Bench;

/// <summary>
/// The synthetic "sentiment" task of the preference benchmark, a stand-in for rDPO's IMDb task: a completion is
/// <see cref="Length"/> words from a fixed 24-word vocabulary separated by single spaces, and its hidden true reward is
/// r(y) = (#positive − #negative) / L over its first L space-separated words. Neutral words, malformed words (anything
/// not in the vocabulary) and missing words count 0; words after the L-th are ignored (so length cannot be gamed);
/// r ∈ [−1, 1]. Prompts are <c>review N: </c>; the reward does not depend on the prompt.
/// </summary>
public static class LexiconTask
{
    /// <summary>Words that add 1/L to the reward.</summary>
    public static readonly string[] Positive = ["good", "great", "nice", "fun", "superb", "love"];
    /// <summary>Words that subtract 1/L.</summary>
    public static readonly string[] Negative = ["bad", "awful", "dull", "poor", "boring", "hate"];
    /// <summary>Words worth 0.</summary>
    public static readonly string[] Neutral = ["the", "movie", "plot", "actor", "scene", "film", "story", "music", "cast", "end", "show", "time"];
    /// <summary>All 24 words.</summary>
    public static readonly string[] Words = [.. Positive, .. Negative, .. Neutral];
    /// <summary>Words per completion (L).</summary>
    public const int Length = 6;

    static readonly HashSet<string> Pos = [.. Positive], Neg = [.. Negative];

    /// <summary>The character tokenizer over every character the prompts and words use.</summary>
    public static CharTokenizer Tokenizer() =>
        CharTokenizer.Create(new string(Words.SelectMany(w => w).Concat("review0123456789: ").Distinct().OrderBy(c => c).ToArray()));

    /// <summary>The prompt with id <paramref name="id"/>.</summary>
    public static string Prompt(int id) => $"review {id}: ";

    /// <summary>r(y) = (#positive − #negative)/L over the first L space-separated words (see the type's remarks).</summary>
    public static double Reward(string completion)
    {
        var words = completion.Split(' ');
        int score = 0;
        for (int i = 0; i < Math.Min(Length, words.Length); i++)
            score += Pos.Contains(words[i]) ? 1 : Neg.Contains(words[i]) ? -1 : 0;
        return (double)score / Length;
    }

    /// <summary>L words drawn uniformly (with replacement) from the vocabulary, space-separated.</summary>
    public static string RandomCompletion(Random rng) => string.Join(' ', Enumerable.Range(0, Length).Select(_ => Words[rng.Next(Words.Length)]));

    /// <summary>Uniform-random completions for the reference policy's SFT: one per prompt id in <paramref name="ids"/>, <paramref name="perPrompt"/> times.</summary>
    public static List<SftExample> UniformSft(IEnumerable<int> ids, int perPrompt, Random rng) =>
        ids.SelectMany(id => Enumerable.Range(0, perPrompt).Select(_ => new SftExample(Prompt(id), RandomCompletion(rng), new Dictionary<string, string>()))).ToList();
}

/// <summary>
/// The noisy preference labeller: y1 ≻ y2 with probability σ(s·(r1 − r2)) (Bradley–Terry on the true reward with scale
/// s), then the label is flipped with probability ε. Two uniform draws per pair, in that order, from the caller's generator.
/// </summary>
/// <param name="Scale">Bradley–Terry scale s.</param>
/// <param name="FlipRate">Probability ε of flipping the Bradley–Terry label.</param>
public sealed record NoisyBradleyTerry(double Scale, double FlipRate)
{
    /// <summary>P(y1 ≻ y2 is the final label) = σ(sΔ)(1 − ε) + (1 − σ(sΔ))ε with Δ = r1 − r2.</summary>
    public double ProbabilityFirstChosen(double r1, double r2)
    {
        double p = 1.0 / (1.0 + Math.Exp(-Scale * (r1 - r2)));
        return p * (1 - FlipRate) + (1 - p) * FlipRate;
    }

    /// <summary>True when the first completion is labelled chosen. <paramref name="uLabel"/> and <paramref name="uFlip"/> are uniform in [0, 1).</summary>
    public bool FirstChosen(double r1, double r2, double uLabel, double uFlip)
    {
        bool first = uLabel < 1.0 / (1.0 + Math.Exp(-Scale * (r1 - r2)));
        return uFlip < FlipRate ? !first : first;
    }

    /// <summary>Labels samples 0 and 1 of a prompt (the online-DPO pair oracle): (chosen, rejected).</summary>
    public (int Chosen, int Rejected)? Label(IReadOnlyList<double> rewards, Random rng)
    {
        if (rewards.Count < 2) return null;
        double uLabel = rng.NextDouble(), uFlip = rng.NextDouble();
        return FirstChosen(rewards[0], rewards[1], uLabel, uFlip) ? (0, 1) : (1, 0);
    }
}
