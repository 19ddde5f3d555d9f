using static TorchSharp.torch;

namespace Sharpen.Models;

/// <summary>
/// Preallocated key/value cache: per layer, keys and values of shape (B, Hkv, capacity, D).
/// All rows share one length (prompts are left-padded to a common length), so appending is a
/// slice copy and attention reads a narrow view. Owns its tensors; dispose it when done.
/// </summary>
public sealed class KvCache : IDisposable
{
    Tensor[] _keys, _values;

    /// <summary>Positions filled so far.</summary>
    public long Length { get; private set; }
    /// <summary>Positions the cache can hold.</summary>
    public long Capacity { get; }
    /// <summary>Rows (sequences) in the cache.</summary>
    public long Batch => _keys[0].shape[0];

    internal KvCache(int layers, long batch, long kvHeads, long capacity, long headDim)
    {
        Capacity = capacity;
        _keys = new Tensor[layers];
        _values = new Tensor[layers];
        for (int i = 0; i < layers; i++)
        {
            _keys[i] = zeros(batch, kvHeads, capacity, headDim).DetachFromDisposeScope();
            _values[i] = zeros(batch, kvHeads, capacity, headDim).DetachFromDisposeScope();
        }
    }

    /// <summary>Writes the new keys/values (B, Hkv, T, D) after the filled part and returns views of everything so far.</summary>
    internal (Tensor K, Tensor V) Append(int layer, Tensor k, Tensor v)
    {
        long t = k.shape[2];
        using (no_grad())
        {
            _keys[layer].narrow(2, Length, t).copy_(k);
            _values[layer].narrow(2, Length, t).copy_(v);
        }
        return (_keys[layer].narrow(2, 0, Length + t), _values[layer].narrow(2, 0, Length + t));
    }

    internal void Advance(long t) => Length += t;

    /// <summary>
    /// Keeps or repeats rows: row i of the result is row <paramref name="rows"/>[i] of this cache
    /// (e.g. each prompt's cache repeated N times for N samples per prompt).
    /// </summary>
    public void SelectRows(Tensor rows)
    {
        for (int i = 0; i < _keys.Length; i++)
        {
            var k = _keys[i].index_select(0, rows).DetachFromDisposeScope();
            var v = _values[i].index_select(0, rows).DetachFromDisposeScope();
            _keys[i].Dispose(); _values[i].Dispose();
            _keys[i] = k; _values[i] = v;
        }
    }

    /// <inheritdoc />
    public void Dispose()
    {
        foreach (var t in _keys) t.Dispose();
        foreach (var t in _values) t.Dispose();
        _keys = []; _values = [];
    }
}
