using System.Text;
using System.Text.Json.Nodes;
using Sharpen.Algorithms;
using Sharpen.Data;
using Sharpen.Environments;
using Sharpen.Tasks;
using Sharpen.Torch;
using TorchSharp;
using static TorchSharp.torch;

namespace Sharpen.Training.Ranking;

/// <summary>
/// REINFORCE on a Plackett–Luce policy (<see cref="PlackettLuce"/>) whose scores come from a <see cref="BilinearScorer"/>.
/// One step: score the candidates of a batch of queries, draw S rankings of the top K per query (Gumbel-top-k), reward
/// each (nDCG@K against graded relevance, Neural PG-RANK; or ±1 for the frozen model's answer with the drawn examples
/// in its prompt, PromptPG), subtract the leave-one-out mean of the query's other S − 1 rewards, and step Adam on
/// −mean (R − b) log π(σ). Evaluation ranks greedily (descending scores). Writes metrics.jsonl and summary.json.
/// </summary>
public static class RankingTrainer
{
    /// <summary>Trains a ranker on <paramref name="task"/>'s queries by nDCG@<see cref="RankingOptions.TopK"/>.</summary>
    public static RankingResult TrainRetrieval(RetrievalTask task, RankingOptions options, string? outputDir = null, Action<string>? log = null)
    {
        options.Validate();
        TorchRuntime.EnsureLoaded();
        if (options.TopK > task.Options.Candidates)
            throw new ArgumentOutOfRangeException(nameof(options), $"ranking.top_k ({options.TopK}) is more than the task's candidates ({task.Options.Candidates})");
        var train = task.Generate(options.TrainQueries, options.Seed);
        var eval = task.Generate(options.EvalQueries, options.Seed + 1_000_003);
        var v = task.Options.Vocabulary;
        using var scorer = new BilinearScorer(v);
        using var optimizer = optim.Adam([scorer.Weight], options.LearningRate);
        using var generator = new Generator().manual_seed(options.Seed);
        var rng = new Random(options.Seed);
        var runLog = outputDir is null ? null : new RunLog(outputDir);
        var rows = new List<JsonObject>();

        double Evaluate()
        {
            using var scope = NewDisposeScope();
            using var _ = no_grad();
            var (q, d, rel) = Encode(eval, v);
            return PlackettLuce.Ndcg(rel, PlackettLuce.Greedy(scorer.Scores(q, d), options.TopK)).mean().item<double>();
        }

        var before = Evaluate();
        log?.Invoke($"ranking: greedy nDCG@{options.TopK} before training {before:F4}");
        var started = DateTime.UtcNow;
        for (var step = 1; step <= options.Steps; step++)
        {
            using var scope = NewDisposeScope();
            var batch = Enumerable.Range(0, options.QueriesPerStep).Select(_ => train[rng.Next(train.Count)]).ToList();
            var (q, d, rel) = Encode(batch, v);
            var scores = scorer.Scores(q, d);                                                   // (B, N)
            var s = options.SamplesPerQuery;
            var rankings = PlackettLuce.Sample(scores, options.TopK, s, generator);            // (B·S, K)
            var logp = PlackettLuce.LogProb(scores.repeat_interleave(s, 0), rankings).view(-1, s);   // (B, S)
            var reward = PlackettLuce.Ndcg(rel.repeat_interleave(s, 0), rankings).view(-1, s);      // (B, S)
            var loss = PlackettLuce.ReinforceLoss(logp, reward, PlackettLuce.LeaveOneOutBaseline(reward));
            optimizer.zero_grad();
            loss.backward();
            optimizer.step();
            var row = new JsonObject { ["step"] = step, ["loss"] = loss.to_type(ScalarType.Float64).item<double>(), ["reward"] = reward.mean().item<double>() };
            if ((options.EvalEvery > 0 && step % options.EvalEvery == 0) || step == options.Steps) row["eval_ndcg"] = Evaluate();
            row["elapsed_s"] = (DateTime.UtcNow - started).TotalSeconds;
            rows.Add(row);
            runLog?.Metrics(row);
            if (row["eval_ndcg"] is { } e) log?.Invoke($"step {step}: reward {row["reward"]} eval nDCG@{options.TopK} {e}");
        }
        var after = rows[^1]["eval_ndcg"]!.GetValue<double>();
        runLog?.Summary(new JsonObject
        {
            ["task"] = "retrieval", ["metric"] = "eval_ndcg", ["top_k"] = options.TopK, ["steps"] = options.Steps,
            ["eval_ndcg_before"] = before, ["eval_ndcg"] = after, ["elapsed_s"] = (DateTime.UtcNow - started).TotalSeconds,
        });
        return new RankingResult("eval_ndcg", before, after, rows);
    }

    /// <summary>
    /// Trains an in-context example selector (PromptPG): for each question of <paramref name="task"/>, <see cref="RankingOptions.Candidates"/>
    /// examples are drawn from <paramref name="pool"/> (problems with the task's worked solutions), the policy picks and
    /// orders <see cref="RankingOptions.TopK"/> of them, and <paramref name="frozen"/> answers a prompt of those examples
    /// followed by the question; the reward is +1 when the task's verifier accepts the answer, else −1.
    /// </summary>
    public static async Task<RankingResult> TrainPromptSelectionAsync(IVerifiableTask task, FrozenModel frozen, IReadOnlyList<Problem> pool,
        IReadOnlyList<Problem> trainQuestions, IReadOnlyList<Problem> evalQuestions, RankingOptions options, string? outputDir = null,
        Action<string>? log = null, CancellationToken cancellationToken = default)
    {
        options.Validate();
        TorchRuntime.EnsureLoaded();
        if (pool.Count < options.Candidates)
            throw new ArgumentException($"the example pool has {pool.Count} problems, fewer than ranking.candidates ({options.Candidates})", nameof(pool));
        if (options.TopK > options.Candidates)
            throw new ArgumentOutOfRangeException(nameof(options), $"ranking.top_k ({options.TopK}) is more than ranking.candidates ({options.Candidates})");
        if (trainQuestions.Count == 0 || evalQuestions.Count == 0) throw new ArgumentException("prompt selection needs training and evaluation questions");
        var alphabet = task.Alphabet;
        using var scorer = new BilinearScorer(alphabet.Length);
        using var optimizer = optim.Adam([scorer.Weight], options.LearningRate);
        using var generator = new Generator().manual_seed(options.Seed);
        var rng = new Random(options.Seed);
        // Held-out questions keep one fixed candidate draw, so evaluations compare the same choices.
        var evalRng = new Random(options.Seed + 1_000_003);
        var evalCandidates = evalQuestions.Select(_ => Draw(evalRng, pool, options.Candidates)).ToList();
        var runLog = outputDir is null ? null : new RunLog(outputDir);
        var rows = new List<JsonObject>();

        async Task<double> EvaluateAsync()
        {
            long[][] picks;
            using (var scope = NewDisposeScope())
            using (no_grad())
            {
                var (q, c) = EncodeText(evalQuestions, evalCandidates, alphabet);
                picks = Rows(PlackettLuce.Greedy(scorer.Scores(q, c), options.TopK));
            }
            var rewards = await RewardsAsync(task, frozen, evalQuestions, evalCandidates, picks, 1, cancellationToken).ConfigureAwait(false);
            return rewards.Count(r => r > 0) / (double)rewards.Length;
        }

        var before = await EvaluateAsync().ConfigureAwait(false);
        log?.Invoke($"prompt selection: greedy accuracy before training {before:F4}");
        var started = DateTime.UtcNow;
        for (var step = 1; step <= options.Steps; step++)
        {
            var questions = Enumerable.Range(0, options.QueriesPerStep).Select(_ => trainQuestions[rng.Next(trainQuestions.Count)]).ToList();
            var candidates = questions.Select(_ => Draw(rng, pool, options.Candidates)).ToList();
            var s = options.SamplesPerQuery;
            // TorchSharp's dispose scopes belong to a thread and an await may resume on another one: draw the rankings in
            // one scope, ask the frozen model outside any scope, then score again (W has not changed) for the gradient.
            long[][] picks;
            using (NewDisposeScope())
            {
                var (q0, c0) = EncodeText(questions, candidates, alphabet);
                picks = Rows(PlackettLuce.Sample(scorer.Scores(q0, c0), options.TopK, s, generator));
            }
            var rewards = await RewardsAsync(task, frozen, questions, candidates, picks, s, cancellationToken).ConfigureAwait(false);
            double lossValue;
            using (NewDisposeScope())
            {
                var (q, c) = EncodeText(questions, candidates, alphabet);
                var scores = scorer.Scores(q, c);                                                 // (B, N)
                var rankings = tensor(picks.SelectMany(r => r).ToArray()).view(-1, options.TopK);  // (B·S, K)
                var reward = tensor(rewards, ScalarType.Float64).view(-1, s);                     // (B, S)
                var logp = PlackettLuce.LogProb(scores.repeat_interleave(s, 0), rankings).view(-1, s);
                var loss = PlackettLuce.ReinforceLoss(logp, reward, PlackettLuce.LeaveOneOutBaseline(reward));
                optimizer.zero_grad();
                loss.backward();
                optimizer.step();
                lossValue = loss.to_type(ScalarType.Float64).item<double>();
            }
            var row = new JsonObject
            {
                ["step"] = step, ["loss"] = lossValue, ["reward"] = rewards.Average(),
                ["accuracy"] = rewards.Count(r => r > 0) / (double)rewards.Length,
            };
            if ((options.EvalEvery > 0 && step % options.EvalEvery == 0) || step == options.Steps) row["eval_accuracy"] = await EvaluateAsync().ConfigureAwait(false);
            foreach (var (k, m) in frozen.TakeMetrics()) row[k] = m;
            row["elapsed_s"] = (DateTime.UtcNow - started).TotalSeconds;
            rows.Add(row);
            runLog?.Metrics(row);
            if (row["eval_accuracy"] is { } e) log?.Invoke($"step {step}: reward {row["reward"]} eval accuracy {e}");
        }
        var after = rows[^1]["eval_accuracy"]!.GetValue<double>();
        runLog?.Summary(new JsonObject
        {
            ["task"] = task.Name, ["metric"] = "eval_accuracy", ["shots"] = options.TopK, ["candidates"] = options.Candidates,
            ["steps"] = options.Steps, ["frozen"] = frozen.Describe(), ["eval_accuracy_before"] = before, ["eval_accuracy"] = after,
            ["elapsed_s"] = (DateTime.UtcNow - started).TotalSeconds,
        });
        return new RankingResult("eval_accuracy", before, after, rows);
    }

    /// <summary>The prompt the frozen model answers: each chosen example's prompt and worked solution on a line, then the question.</summary>
    public static string BuildPrompt(IVerifiableTask task, IEnumerable<Problem> examples, Problem question)
    {
        var sb = new StringBuilder();
        foreach (var e in examples) sb.Append(e.Prompt).Append(task.Solve(e)).Append('\n');
        return sb.Append(question.Prompt).ToString();
    }

    static async Task<double[]> RewardsAsync(IVerifiableTask task, FrozenModel frozen, IReadOnlyList<Problem> questions,
        IReadOnlyList<Problem[]> candidates, long[][] picks, int samples, CancellationToken cancellationToken)
    {
        var conversations = new List<IReadOnlyList<ChatMessage>>(picks.Length);
        for (var r = 0; r < picks.Length; r++)
        {
            var b = r / samples;
            conversations.Add([new ChatMessage("user", BuildPrompt(task, picks[r].Select(i => candidates[b][i]), questions[b]))]);
        }
        var replies = await frozen.AnswerAsync(conversations, cancellationToken).ConfigureAwait(false);
        return replies.Select((reply, r) => task.Verify(questions[r / samples], reply.Text).Correct ? 1.0 : -1.0).ToArray();
    }

    static Problem[] Draw(Random rng, IReadOnlyList<Problem> pool, int n)
    {
        var idx = Enumerable.Range(0, pool.Count).ToArray();
        for (var i = 0; i < n; i++)
        {
            var j = rng.Next(i, idx.Length);
            (idx[i], idx[j]) = (idx[j], idx[i]);
        }
        return idx[..n].Select(i => pool[i]).ToArray();
    }

    static long[][] Rows(Tensor rankings)
    {
        var flat = rankings.to(ScalarType.Int64).data<long>().ToArray();
        var k = (int)rankings.shape[1];
        return Enumerable.Range(0, (int)rankings.shape[0]).Select(r => flat[(r * k)..((r + 1) * k)]).ToArray();
    }

    /// <summary>Word-count vectors: queries (B, V), documents (B, N, V), relevance (B, N).</summary>
    static (Tensor Queries, Tensor Documents, Tensor Relevance) Encode(IReadOnlyList<RankingQuery> batch, int vocabulary)
    {
        var n = batch[0].Documents.Length;
        var q = new float[batch.Count * vocabulary];
        var d = new float[batch.Count * n * vocabulary];
        var rel = new float[batch.Count * n];
        for (var b = 0; b < batch.Count; b++)
        {
            foreach (var w in batch[b].Query) q[b * vocabulary + w]++;
            for (var c = 0; c < n; c++)
            {
                foreach (var w in batch[b].Documents[c]) d[(b * n + c) * vocabulary + w]++;
                rel[b * n + c] = batch[b].Relevance[c];
            }
        }
        return (tensor(q).view(batch.Count, vocabulary), tensor(d).view(batch.Count, n, vocabulary), tensor(rel).view(batch.Count, n));
    }

    /// <summary>Character-count vectors over <paramref name="alphabet"/> of the questions' and candidates' prompts.</summary>
    static (Tensor Questions, Tensor Candidates) EncodeText(IReadOnlyList<Problem> questions, IReadOnlyList<Problem[]> candidates, string alphabet)
    {
        var f = alphabet.Length;
        var n = candidates[0].Length;
        var q = new float[questions.Count * f];
        var c = new float[questions.Count * n * f];
        for (var b = 0; b < questions.Count; b++)
        {
            Count(questions[b].Prompt, q.AsSpan(b * f, f));
            for (var i = 0; i < n; i++) Count(candidates[b][i].Prompt, c.AsSpan((b * n + i) * f, f));
        }
        return (tensor(q).view(questions.Count, f), tensor(c).view(questions.Count, n, f));

        void Count(string text, Span<float> into)
        {
            foreach (var ch in text)
            {
                var at = alphabet.IndexOf(ch);
                if (at >= 0) into[at]++;
            }
        }
    }
}
