using System.Diagnostics;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Evaluation;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using Sharpen.Training.Rl;
using Sharpen.Training.Sft;

namespace Sharpen.Recipes;

/// <summary>Knobs of the agent quickstart (<c>sharpen quickstart --env guess-number</c>).</summary>
public record AgentQuickstartSettings
{
    /// <summary>The environment; only <c>guess-number</c> has a demonstration generator.</summary>
    public string Env { get; init; } = "guess-number";
    /// <summary>Smallest secret.</summary>
    public int Low { get; init; } = 1;
    /// <summary>Largest secret. Default 15: binary search always wins within 4 guesses, random legal guessing about 60% of
    /// the time.</summary>
    public int High { get; init; } = 15;
    /// <summary>Whether the feedback states the interval the secret is still in (<see cref="GuessNumberOptions.ShowRange"/>).</summary>
    public bool ShowRange { get; init; } = true;
    /// <summary>Whether every number of the game is one token of the policy's vocabulary (the character tokenizer plus the
    /// numbers with two or more digits as <see cref="CharTokenizer.Words"/>). Default true: a guess is then one categorical
    /// choice over the numbers (with single characters, <c>1</c> and <c>10</c>–<c>15</c> share their first token, so
    /// 7 of the 15 numbers start with <c>1</c>: greedy play and the policy gradient act on that digit, not on the number).
    /// Default false: measured end to end, number tokens move RL's greedy opening to 8 (the best) but the SFT policy reads
    /// the ranges worse (atomic numbers carry no digit order: 18% of its greedy guesses illegal against 6%) and the final
    /// success was lower than with characters (README, agent quickstart).</summary>
    public bool NumberTokens { get; init; }
    /// <summary>Guesses per game (the turn limit the success rate is measured within).</summary>
    public int MaxTurns { get; init; } = 4;
    /// <summary>Demonstration games the SFT stage learns from (random legal guesses, no strategy).</summary>
    public int TrainGames { get; init; } = 4000;
    /// <summary>Held-out games each stage is evaluated on (seeds 0 … n − 1).</summary>
    public int TestGames { get; init; } = 500;
    /// <summary>SFT optimizer steps.</summary>
    public int SftSteps { get; init; } = 300;
    /// <summary>Width of the policy.</summary>
    public int HiddenSize { get; init; } = 64;
    /// <summary>Transformer layers.</summary>
    public int Layers { get; init; } = 2;
    /// <summary>Seed of data, initialisation and order.</summary>
    public int Seed { get; init; } = 1;
    /// <summary>RL algorithm (one that works with environments: gigpo, grpo, dr_grpo, rloo, reinforce, ppo, oreal). Default
    /// gigpo: each guess is also judged against the other guesses made in the same interval.</summary>
    public string RlAlgorithm { get; init; } = "gigpo";
    /// <summary>RL iterations.</summary>
    public int RlIterations { get; init; } = 300;
    /// <summary>Seeds per RL iteration.</summary>
    public int RlGames { get; init; } = 16;
    /// <summary>Trajectories per seed (the group).</summary>
    public int RlSamples { get; init; } = 8;
    /// <summary>RL learning rate.</summary>
    public double RlLearningRate { get; init; } = 1e-3;
    /// <summary>Trajectories per RL optimizer step (0: the whole iteration's batch, one step). Default 64: two steps per
    /// iteration of 16 × 8 games.</summary>
    public int RlMiniBatchSize { get; init; } = 64;
    /// <summary>RL optimizer steps whose learning rate ramps up linearly (a fresh Adam's first steps move every weight by
    /// about the full learning rate, whatever its gradient's size).</summary>
    public int RlWarmupSteps { get; init; } = 10;
    /// <summary>Passes over an RL iteration's batch.</summary>
    public int RlEpochs { get; init; } = 1;
    /// <summary>KL coefficient toward the SFT model during RL (0: no reference model).</summary>
    public double RlBeta { get; init; }
    /// <summary>Reward of an illegal guess (<see cref="GuessNumberOptions.IllegalReward"/>: outside the interval the feedback
    /// leaves, a repeat, or not a number in range).</summary>
    public double IllegalReward { get; init; } = -0.5;
    /// <summary>Reward per bit of information a guess gains (<see cref="GuessNumberOptions.ProgressReward"/>). Default 0.25
    /// (a whole game's bits, log₂ 15 ≈ 3.9, are then worth about one win): with the win alone, a guess's effect on the
    /// outcome is one Bernoulli draw two or three turns later, and 100 iterations of GiGPO moved greedy success by 1.8
    /// points; with the bits, each turn is judged by how well it split the interval (README, agent quickstart).</summary>
    public double ProgressReward { get; init; } = 0.25;
    /// <summary>Entropy bonus of the RL loss (<see cref="RlOptions.EntropyCoefficient"/>). Default 0.01: without it the
    /// sampled policy's entropy fell to 0.08 by iteration 300 and the later turns' choices froze where they were.</summary>
    public double RlEntropy { get; init; } = 0.01;
    /// <summary>How the RL loss sums a trajectory's tokens. Default <see cref="LossAggregation.SeqMeanTokenSum"/>: every
    /// policy token of a trajectory carries the trajectory's whole advantage. GRPO's published per-trajectory token mean
    /// (<see cref="LossAggregation.SeqMeanTokenMean"/>) divides it by the trajectory's length, and in guess-the-number the
    /// losers are the long trajectories (they use every turn), so a guess shared by winners and losers of a group is
    /// pushed up for nothing: the policy sharpens on its habits (see <c>docs/architecture.md</c>).</summary>
    public LossAggregation RlAggregation { get; init; } = LossAggregation.SeqMeanTokenSum;
}

/// <summary>One stage of the agent quickstart: greedy success rate and mean turns on <paramref name="N"/> held-out games.</summary>
public sealed record AgentQuickstartStage(string Name, double SuccessRate, double MeanTurns, int N, double Seconds);

/// <summary>What the agent quickstart produced; the evaluations hold the held-out transcripts.</summary>
public sealed record AgentQuickstartResult(IReadOnlyList<AgentQuickstartStage> Stages, JsonObject Summary, long Parameters,
    EnvironmentEvalResult SftEval, EnvironmentEvalResult RlEval, IReadOnlyList<JsonObject> SftMetrics, IReadOnlyList<JsonObject> RlMetrics, double Seconds);

/// <summary>
/// The agent quickstart: RL doing what demonstrations cannot. A tiny policy first imitates format-correct games of
/// guess-the-number whose guesses are random legal numbers (no strategy: each uniform among the numbers the feedback
/// still allows), then
/// RL (GiGPO by default) in the environment, rewarded 1 for a win within the turn limit and
/// <see cref="AgentQuickstartSettings.ProgressReward"/> per bit of information each guess gains. Both stages are measured on the same held-out
/// games (greedy): SFT learns to read the feedback and stay inside the interval; choosing the number that splits it
/// (binary search) is what RL adds. An illegal
/// guess (one the feedback already ruled out) costs <see cref="AgentQuickstartSettings.IllegalReward"/>.
/// </summary>
public static class AgentQuickstart
{
    /// <summary>Per turn of each demonstration game: the transcript so far (<see cref="TranscriptRenderer.Plain"/>, ending
    /// in "&gt; ") as the prompt and the guess and a newline as the completion. Each guess is uniformly random among the
    /// numbers still consistent with the feedback so far (a legal guess: never one already ruled out, so the
    /// demonstrations show how to read the feedback but no strategy for choosing among the candidates); a game ends when
    /// it is won or out of turns. Seeds start at 2,000,000 (never a held-out or RL seed).</summary>
    public static List<SftExample> Demonstrations(AgentQuickstartSettings s)
    {
        var options = Options(s);
        var rng = new Random(s.Seed);
        var examples = new List<SftExample>();
        for (int game = 0; game < s.TrainGames; game++)
        {
            var env = new GuessNumberEnvironment(options);
            var messages = env.ResetAsync(2_000_000 + game).AsTask().GetAwaiter().GetResult().ToList();
            int lo = s.Low, hi = s.High;
            for (int turn = 0; turn < s.MaxTurns; turn++)
            {
                int g = rng.Next(lo, hi + 1);
                var guess = g.ToString(System.Globalization.CultureInfo.InvariantCulture);
                examples.Add(new SftExample(TranscriptRenderer.Plain(messages), guess + "\n", new Dictionary<string, string>()));
                var step = env.StepAsync(guess).AsTask().GetAwaiter().GetResult();
                messages.Add(new ChatMessage("assistant", guess));
                messages.AddRange(step.Observation);
                if (step.Done) break;
                if (step.Observation[0].Content.StartsWith("higher", StringComparison.Ordinal)) lo = g + 1;
                else hi = g - 1;
            }
        }
        return examples;
    }

    /// <summary>The policy's tokenizer: one token per character of <paramref name="alphabet"/>, plus (with
    /// <see cref="AgentQuickstartSettings.NumberTokens"/>) one token per number of two or more digits in the game's range.</summary>
    public static CharTokenizer Tokenizer(AgentQuickstartSettings s, string alphabet) =>
        CharTokenizer.Create(alphabet, s.NumberTokens
            ? Enumerable.Range(s.Low, s.High - s.Low + 1).Where(n => n >= 10).Select(n => n.ToString(System.Globalization.CultureInfo.InvariantCulture)).ToList()
            : []);

    /// <summary>The environment's options for <paramref name="s"/>.</summary>
    public static GuessNumberOptions Options(AgentQuickstartSettings s) =>
        new() { Low = s.Low, High = s.High, MaxTurns = s.MaxTurns, ShowRange = s.ShowRange, IllegalReward = s.IllegalReward, ProgressReward = s.ProgressReward };

    /// <summary>Runs both stages into <paramref name="outDir"/> (sft/, rl/, metrics.jsonl of the RL run, summary.json with
    /// <c>stages: [{name, success_rate, mean_turns, n, seconds}]</c> and <c>rl_gain_points</c>, transcripts of both evaluations).</summary>
    public static AgentQuickstartResult Run(AgentQuickstartSettings s, string outDir, Action<string>? log = null, CancellationToken cancel = default)
    {
        if (!string.Equals(s.Env, "guess-number", StringComparison.OrdinalIgnoreCase))
            throw new ArgumentException($"quickstart --env: only guess-number has a demonstration generator, not '{s.Env}'");
        var total = Stopwatch.StartNew();
        Directory.CreateDirectory(outDir);
        var options = Options(s);
        options.Validate();
        IEnvironment Create() => new GuessNumberEnvironment(options);
        var tokenizer = Tokenizer(s, Create().Alphabet);
        var rollout = new MultiTurnOptions { MaxTurns = s.MaxTurns, MaxTrajectoryTokens = 48 + 12 * s.MaxTurns };
        var greedy = rollout with { Sampling = rollout.Sampling with { Temperature = 0, MaxNewTokens = 4 } };
        var seeds = Enumerable.Range(0, s.TestGames).ToArray();
        var init = new JsonObject
        {
            ["hidden_size"] = s.HiddenSize, ["intermediate_size"] = s.HiddenSize * 2, ["num_hidden_layers"] = s.Layers,
            ["num_attention_heads"] = Math.Max(1, s.HiddenSize / 16), ["max_position_embeddings"] = 128,
        };
        using var model = new CausalLM(SftPipeline.FreshConfig(init, tokenizer), s.Seed);

        // 1. SFT on random-guess games.
        var sw = Stopwatch.StartNew();
        var demos = Demonstrations(s);
        log?.Invoke($"sft: {demos.Count} demonstration turns from {s.TrainGames} random-guess games");
        var sftDir = Path.Combine(outDir, "sft");
        new SftTrainer(model, tokenizer, new SftOptions
        {
            MaxSteps = s.SftSteps, BatchSize = 64, LearningRate = 2e-3, WarmupSteps = Math.Min(20, s.SftSteps / 4), MinLrRatio = 0.1,
            LogEvery = 10, EvalEvery = 0, CheckpointEvery = 0, MaxSequenceLength = 96, Seed = s.Seed,
        }) { Log = log }.Run(demos, [], sftDir, cancel: cancel);
        var sftEval = EnvironmentEvaluator.Run(new RolloutEngine(model, tokenizer), Create, seeds, greedy, cancel: cancel);
        double sftSeconds = sw.Elapsed.TotalSeconds;
        TrajectoryJsonl.Write(Path.Combine(outDir, "sft_transcripts.jsonl"), sftEval.Trajectories, includeTokens: false);
        log?.Invoke($"sft: success {sftEval.SuccessRate:P1} within {s.MaxTurns} turns, mean turns {sftEval.MeanTurns:F2} (n={sftEval.N}, {sftSeconds:F0} s)");

        // 2. RL in the environment from the SFT model.
        sw.Restart();
        var rlDir = Path.Combine(outDir, "rl");
        var rlOptions = RlOptions.For(s.RlAlgorithm) with
        {
            Iterations = s.RlIterations, PromptsPerIteration = s.RlGames, SamplesPerPrompt = s.RlSamples, MaxNewTokens = 4,
            LearningRate = s.RlLearningRate, Temperature = 1.0, Beta = s.RlBeta, EvalEvery = 0, EvalProblems = s.TestGames,
            CheckpointEvery = 0, MicroBatchSize = 128, Seed = s.Seed, MiniBatchSize = s.RlMiniBatchSize, Epochs = s.RlEpochs, WarmupSteps = s.RlWarmupSteps,
            Aggregation = s.RlAggregation, EntropyCoefficient = s.RlEntropy,
        };
        var trainer = new RlTrainer(model, tokenizer, rlOptions, [])
        {
            Log = log, Environment = new RlEnvironment(Create, rollout) { EvalSeeds = seeds },
        };
        trainer.RunEnvironment(rlDir, cancel: cancel);
        var rlEval = trainer.EnvironmentEval!;
        double rlSeconds = sw.Elapsed.TotalSeconds;
        TrajectoryJsonl.Write(Path.Combine(outDir, "rl_transcripts.jsonl"), rlEval.Trajectories, includeTokens: false);
        log?.Invoke($"{s.RlAlgorithm}: success {rlEval.SuccessRate:P1}, mean turns {rlEval.MeanTurns:F2} (SFT {sftEval.SuccessRate:P1}; {rlSeconds:F0} s)");

        // 3. Summary.
        var stages = new[]
        {
            new AgentQuickstartStage("sft", sftEval.SuccessRate, sftEval.MeanTurns, sftEval.N, Math.Round(sftSeconds, 1)),
            new AgentQuickstartStage(s.RlAlgorithm, rlEval.SuccessRate, rlEval.MeanTurns, rlEval.N, Math.Round(rlSeconds, 1)),
        };
        var rlMetrics = new RunLog(rlDir, append: true).ReadMetrics();
        var runLog = new RunLog(outDir);
        foreach (var row in rlMetrics) runLog.Metrics((JsonObject)row.DeepClone());
        double seconds = total.Elapsed.TotalSeconds;
        var summary = new JsonObject
        {
            ["env"] = "guess-number", ["low"] = s.Low, ["high"] = s.High, ["max_turns"] = s.MaxTurns, ["show_range"] = s.ShowRange, ["number_tokens"] = s.NumberTokens, ["vocab_size"] = tokenizer.VocabSize, ["parameters"] = model.ParameterCount(),
            ["train_games"] = s.TrainGames, ["demonstration_turns"] = demos.Count, ["sft_steps"] = s.SftSteps,
            ["rl"] = new JsonObject
            {
                ["algorithm"] = s.RlAlgorithm, ["iterations"] = s.RlIterations, ["games"] = s.RlGames, ["samples"] = s.RlSamples,
                ["learning_rate"] = s.RlLearningRate, ["warmup_steps"] = s.RlWarmupSteps, ["mini_batch_size"] = s.RlMiniBatchSize,
                ["epochs"] = s.RlEpochs, ["aggregation"] = s.RlAggregation.ToString(), ["beta"] = s.RlBeta, ["illegal_reward"] = s.IllegalReward,
                ["progress_reward"] = s.ProgressReward, ["entropy_coefficient"] = s.RlEntropy,
            },
            ["stages"] = new JsonArray(stages.Select(st => (JsonNode)new JsonObject
                { ["name"] = st.Name, ["success_rate"] = st.SuccessRate, ["mean_turns"] = st.MeanTurns, ["n"] = st.N, ["seconds"] = st.Seconds }).ToArray()),
            ["rl_gain_points"] = Math.Round(100 * (rlEval.SuccessRate - sftEval.SuccessRate), 1),
            ["seconds"] = Math.Round(seconds, 1), ["final_checkpoint"] = Path.Combine(rlDir, "final"),
        };
        runLog.Summary(summary);
        var sftMetrics = new RunLog(sftDir, append: true).ReadMetrics();
        return new AgentQuickstartResult(stages, summary, model.ParameterCount(), sftEval, rlEval, sftMetrics, rlMetrics, seconds);
    }
}
