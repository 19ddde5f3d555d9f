using Sharpen.Checkpoints;
using Sharpen.Generation;
using Sharpen.Models;
using Sharpen.Tokenizers;
using static TorchSharp.torch;

namespace Sharpen.Rewards;

/// <summary>
/// A trained reward model as a reward: loads a checkpoint folder written by the reward-model trainer (<c>kind: reward_model</c>)
/// (model, tokenizer, <c>scalar_head.safetensors</c>) and scores prompt + completion + EOS by the head's value at
/// the last real token, without gradients, in micro-batches. With <see cref="Normalize"/> the scores of each call are
/// standardised over the batch: (r − mean) / (std + 1e-6), std the population standard deviation.
/// </summary>
public sealed class ModelReward : IRewardFunction, IDisposable
{
    readonly CausalLM _model;
    readonly ScalarHead _head;
    readonly ITokenizer _tokenizer;

    /// <inheritdoc />
    public string Name { get; }
    /// <summary>Standardise each batch's scores.</summary>
    public bool Normalize { get; }
    /// <summary>Completions scored per forward pass.</summary>
    public int MicroBatch { get; }
    /// <summary>The checkpoint folder.</summary>
    public string Directory { get; }

    /// <summary>Loads <paramref name="directory"/>; throws <see cref="CheckpointException"/> naming it when it has no scalar head.</summary>
    public ModelReward(string directory, string? name = null, bool normalize = false, int microBatch = 16)
    {
        if (microBatch <= 0) throw new ArgumentException($"microBatch must be positive, got {microBatch}");
        if (System.IO.Directory.Exists(directory) && !File.Exists(Path.Combine(directory, ScalarHead.FileName)))
            throw new CheckpointException($"{directory}: no {ScalarHead.FileName}; not a reward-model checkpoint (train one with a kind: reward_model recipe)");
        var loaded = HfCheckpoint.Load(directory, requireTokenizer: true);
        if (loaded.Head is null)
        {
            loaded.Model.Dispose();
            throw new CheckpointException($"{directory}: no {ScalarHead.FileName}; not a reward-model checkpoint (train one with a kind: reward_model recipe)");
        }
        (_model, _head, _tokenizer) = (loaded.Model, loaded.Head, loaded.Tokenizer!);
        _model.eval();
        _head.eval();
        Name = string.IsNullOrEmpty(name) ? "reward_model" : name;
        Normalize = normalize;
        MicroBatch = microBatch;
        Directory = directory;
    }

    /// <summary>Raw rewards of (prompt, completion) pairs, before any normalisation.</summary>
    public double[] Score(IReadOnlyList<(string Prompt, string Completion)> items)
    {
        var result = new double[items.Count];
        int padId = _tokenizer.PadTokenId ?? 0;
        using var _ = no_grad();
        for (int start = 0; start < items.Count; start += MicroBatch)
        {
            using var scope = NewDisposeScope();
            int n = Math.Min(MicroBatch, items.Count - start);
            var enc = Enumerable.Range(start, n)
                .Select(i => RewardModelScoring.Encode(_tokenizer, _model.Config, items[i].Prompt, items[i].Completion)).ToList();
            var sb = SequenceBatch.Build(enc.Select(e => (IReadOnlyList<int>)e.Prompt).ToList(),
                enc.Select(e => (IReadOnlyList<int>)e.Completion).ToList(), padId);
            var r = RewardModelScoring.Rewards(_model, _head, sb).to(ScalarType.Float32).data<float>().ToArray();
            for (int i = 0; i < n; i++) result[start + i] = r[i];
        }
        return result;
    }

    /// <inheritdoc />
    public ValueTask<double?[]> ScoreAsync(IReadOnlyList<RewardContext> batch, CancellationToken cancel = default)
    {
        cancel.ThrowIfCancellationRequested();
        if (batch.Count == 0) return ValueTask.FromResult(Array.Empty<double?>());
        var r = Score(batch.Select(c => (c.Prompt, c.Completion)).ToList());
        if (Normalize)
        {
            double mean = r.Average();
            double std = Math.Sqrt(r.Select(x => (x - mean) * (x - mean)).Average());
            for (int i = 0; i < r.Length; i++) r[i] = (r[i] - mean) / (std + 1e-6);
        }
        return ValueTask.FromResult(r.Select(x => (double?)x).ToArray());
    }

    /// <inheritdoc />
    public void Dispose()
    {
        _model.Dispose();
        _head.Dispose();
    }
}
