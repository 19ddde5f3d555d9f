using Sharpen.Algorithms;
using Sharpen.Generation;
using Sharpen.Models;
using static TorchSharp.torch;

namespace Sharpen.Training.Rl;

/// <summary>
/// OREAL's token-level outcome reward model as the RL trainer runs it (Lyu et al. 2025, arXiv:2502.06781 §2.4): a linear
/// head w_t = v·h_t + c on the policy's last hidden state at each response token (the state that has read the token), trained
/// each iteration on that iteration's rollouts with <see cref="OrealTokenWeights.OutcomeLoss"/> (σ of the sequence's mean
/// w_t predicts the binary outcome), and then read as per-token weights (<see cref="OrealTokenWeights.Weights"/>) that multiply
/// the policy loss's per-token terms. Departure: the paper's token-level RM is a separate language model; here it is a head on
/// the policy's detached hidden states (C + 1 parameters), so it costs one extra forward pass without gradients per iteration.
/// The head persists across iterations (one AdamW per run), starts at zero (every token neutral) and takes
/// <see cref="Steps"/> full-batch steps per iteration before its weights are read.
/// </summary>
public sealed class OrealTokenModel : IDisposable
{
    /// <summary>File name of the head inside a checkpoint folder.</summary>
    public const string FileName = "oreal_token_rm.safetensors";

    readonly ScalarHead _head;
    readonly optim.Optimizer _opt;

    /// <summary>Full-batch optimizer steps per <see cref="Train"/>.</summary>
    public int Steps { get; }

    /// <summary>A zero-initialised head for hidden size <paramref name="hiddenSize"/>.</summary>
    public OrealTokenModel(long hiddenSize, double learningRate, int steps)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(steps);
        if (!(learningRate > 0) || !double.IsFinite(learningRate)) throw new ArgumentOutOfRangeException(nameof(learningRate), learningRate, "must be a positive finite number");
        _head = new ScalarHead(hiddenSize);
        _opt = optim.AdamW(_head.parameters(), lr: learningRate, weight_decay: 0.0);
        Steps = steps;
    }

    /// <summary>The head's parameters (for checkpoints).</summary>
    public ScalarHead Head => _head;

    /// <summary>The policy's last hidden state at each completion token <c>(B, A, C)</c>, without gradients.</summary>
    public static Tensor Hidden(CausalLM policy, SequenceBatch m)
    {
        using var _ = no_grad();
        var hidden = policy.Forward(m.InputIds, m.AttentionMask, returnHidden: true, lastLogitsOnly: true).Hidden!;   // (B, P+A, C)
        return hidden.narrow(1, m.PromptLength, m.CompletionIds.shape[1]).detach();                                    // (B, A, C)
    }

    /// <summary>w_t per token <c>(B, A)</c> (0 at padding).</summary>
    public Tensor Logits(Tensor hidden, Tensor mask) => _head.forward(hidden) * mask.to_type(ScalarType.Float32);

    /// <summary><see cref="Steps"/> AdamW steps on the outcome loss; returns the loss before the first and after the last step.</summary>
    /// <param name="hidden"><c>(B, A, C)</c> hidden states.</param>
    /// <param name="mask">1 at response tokens <c>(B, A)</c>.</param>
    /// <param name="labels">Outcome per sequence in [0, 1] <c>(B)</c>.</param>
    public (double Before, double After) Train(Tensor hidden, Tensor mask, Tensor labels)
    {
        double before = double.NaN;
        for (int s = 0; s < Steps; s++)
        {
            using var scope = NewDisposeScope();
            _opt.zero_grad();
            var loss = OrealTokenWeights.OutcomeLoss(_head.forward(hidden.detach()), mask, labels);
            if (s == 0) before = loss.item<float>();
            loss.backward();
            _opt.step();
        }
        using (no_grad())
        using (NewDisposeScope())
            return (before, OrealTokenWeights.OutcomeLoss(_head.forward(hidden), mask, labels).item<float>());
    }

    /// <summary>The per-token weights ω <c>(B, A)</c> of the current head (ω⁺ on correct rows, ω⁻ on wrong ones, 0 at padding).</summary>
    public Tensor Weights(Tensor hidden, Tensor mask, Tensor correct)
    {
        using var _ = no_grad();
        return OrealTokenWeights.Weights(Logits(hidden, mask), mask, correct);
    }

    /// <summary>The head's weights by name (for a checkpoint).</summary>
    public Dictionary<string, Tensor> State() => _head.named_parameters().ToDictionary(p => p.name, p => (Tensor)p.parameter.detach());

    /// <summary>Loads weights saved by <see cref="State"/>.</summary>
    public void Load(IReadOnlyDictionary<string, Tensor> weights)
    {
        using var _ = no_grad();
        foreach (var (name, p) in _head.named_parameters())
            p.copy_(weights.TryGetValue(name, out var w) ? w : throw new InvalidDataException($"{FileName}: missing tensor '{name}'"));
    }

    /// <inheritdoc/>
    public void Dispose() { _head.Dispose(); _opt.Dispose(); }
}
