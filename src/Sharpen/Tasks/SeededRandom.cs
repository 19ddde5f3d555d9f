namespace Sharpen.Tasks;

/// <summary>
/// SplitMix64 (Steele, Lea and Flood 2014): a tiny PRNG whose output depends only on the seed,
/// so generated problems are the same on every run, runtime and machine. Public for tasks written outside this
/// assembly (<see cref="SeededTask{TOptions}"/> hands each problem its own stream).
/// </summary>
public sealed class SeededRandom
{
    ulong _state;

    /// <summary>A generator starting from <paramref name="seed"/>.</summary>
    public SeededRandom(ulong seed) => _state = seed;

    /// <summary>The generator for problem <paramref name="index"/> of a task run with <paramref name="seed"/>.</summary>
    public static SeededRandom ForProblem(int seed, int index, ulong salt) =>
        new(Mix(Mix((ulong)(uint)seed ^ salt) ^ (ulong)(uint)index));

    /// <summary>The next 64 uniformly random bits.</summary>
    public ulong NextUInt64()
    {
        _state += 0x9E3779B97F4A7C15UL;
        return Mix(_state);
    }

    /// <summary>Uniform integer in [min, max] (both inclusive).</summary>
    public int Next(int min, int max)
    {
        if (max < min) throw new ArgumentOutOfRangeException(nameof(max));
        var span = (ulong)((long)max - min + 1);
        var high = Math.BigMul(NextUInt64(), span, out _);   // Lemire's multiply-shift: high 64 bits of x * span
        return (int)((long)min + (long)high);
    }

    static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }
}
