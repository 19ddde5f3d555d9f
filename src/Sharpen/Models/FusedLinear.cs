using System.Runtime.InteropServices;
using TorchSharp.Modules;
using static TorchSharp.torch;

namespace Sharpen.Models;

/// <summary>
/// Several projections that read the same input (q/k/v, gate/up) stored as row blocks of one weight matrix: each
/// <see cref="Linear"/>'s weight (and bias) parameter becomes a view of its rows in <see cref="Weight"/> (<see cref="Bias"/>).
/// Training, checkpoints and optimizers see the same parameters as before, by the same names and shapes; every in-place
/// change to them (optimizer steps, <c>copy_</c> on load, a test's <c>add_</c>) lands in the fused matrix, so the decode
/// fast path can use it with one matmul and no copy, and has nothing to invalidate. The one way the two can part is a
/// parameter replaced by another tensor (a dtype or device move, an assignment); <see cref="Intact"/> checks, per call
/// and cheaply (storage address and offset of each part, no data read), that they have not, and the caller then falls
/// back to concatenating the parts.
/// </summary>
internal sealed class FusedLinear : IDisposable
{
    readonly Linear[] _parts;
    readonly long[] _rows;

    /// <summary>(Σ out_features, in_features): the parts' weights one after the other.</summary>
    public Tensor Weight { get; }
    /// <summary>(Σ out_features): the parts' biases, or null when they have none.</summary>
    public Tensor? Bias { get; }

    public FusedLinear(params Linear[] parts)
    {
        _parts = parts;
        _rows = parts.Select(p => p.weight!.shape[0]).ToArray();
        using var _ = no_grad();
        Weight = cat(parts.Select(p => p.weight!.detach()).ToArray(), 0).DetachFromDisposeScope();
        bool biased = parts.All(p => p.bias is not null);
        Bias = biased ? cat(parts.Select(p => p.bias!.detach()).ToArray(), 0).DetachFromDisposeScope() : null;
        long at = 0;
        for (int i = 0; i < parts.Length; i++)
        {
            // The setter disposes the parameter it replaces.
            parts[i].weight = new TorchSharp.Modules.Parameter(Weight.narrow(0, at, _rows[i]), parts[i].weight!.requires_grad);
            if (Bias is not null)
                parts[i].bias = new TorchSharp.Modules.Parameter(Bias.narrow(0, at, _rows[i]), parts[i].bias!.requires_grad);
            at += _rows[i];
        }
    }

    /// <summary>Whether every part's parameters are still the views of <see cref="Weight"/> and <see cref="Bias"/> made at
    /// construction (same storage, offset, shape and dtype).</summary>
    public bool Intact
    {
        get
        {
            long at = 0;
            for (int i = 0; i < _parts.Length; i++)
            {
                if (!Aliases(_parts[i].weight!, Weight, at * Weight.shape[1], _rows[i])) return false;
                if (Bias is not null && (_parts[i].bias is not { } b || !Aliases(b, Bias, at, _rows[i]))) return false;
                at += _rows[i];
            }
            return true;
        }
    }

    /// <summary>The fused weight and bias when the parts compute with their own parameters now (no LoRA adapter of
    /// <paramref name="adapters"/> on any of them is on) and are still views of it; otherwise null.</summary>
    public (Tensor Weight, Tensor? Bias)? Plain(Dictionary<string, LoraAdapter> adapters, params string[] names) =>
        names.Any(n => adapters.TryGetValue(n, out var a) && a.Switch.Enabled) || !Intact ? null : (Weight, Bias);

    /// <summary>Releases this object's handles of the fused tensors (the parameters' views keep the storage while they live).</summary>
    public void Dispose()
    {
        Weight.Dispose();
        Bias?.Dispose();
    }

    static bool Aliases(Tensor part, Tensor whole, long offset, long rows) =>
        part.dtype == whole.dtype && part.device_type == whole.device_type && part.shape[0] == rows &&
        part.shape.Skip(1).SequenceEqual(whole.shape.Skip(1)) && part.is_contiguous() &&
        THSStorage_data_ptr(part.Handle) == THSStorage_data_ptr(whole.Handle) &&
        THSTensor_storage_offset(part.Handle) == THSTensor_storage_offset(whole.Handle) + offset;

    [DllImport("LibTorchSharp")]
    static extern IntPtr THSStorage_data_ptr(IntPtr tensor);

    [DllImport("LibTorchSharp")]
    static extern long THSTensor_storage_offset(IntPtr tensor);
}
