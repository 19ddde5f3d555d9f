namespace Sharpen.Tasks;

/// <summary>
/// The shape the generated built-in tasks share, so a new task writes only what is its own: options validated when the
/// task is made, and problem i of a seed drawn from its own stream <see cref="SeededRandom.ForProblem"/>(seed, i, salt),
/// which makes the first k problems of a larger count the same k problems on every run and machine. A task derives from
/// this, passes its options and salt (a constant of its own, so two tasks never draw the same streams), and writes
/// <see cref="GenerateOne"/>, <see cref="Solve"/>, <see cref="Verify"/> and <see cref="ExtractFinalAnswer"/>.
/// </summary>
/// <typeparam name="TOptions">The task's options record.</typeparam>
public abstract class SeededTask<TOptions> : IVerifiableTask where TOptions : TaskOptions, new()
{
    readonly ulong _salt;

    /// <summary>Validates <paramref name="options"/> (the defaults when null; throws <see cref="ArgumentOutOfRangeException"/>
    /// for an invalid value) and keeps <paramref name="salt"/> for the problem streams.</summary>
    protected SeededTask(TOptions? options, ulong salt)
    {
        Options = options ?? new TOptions();
        Options.Validate();
        _salt = salt;
    }

    /// <summary>The options this task was made with.</summary>
    public TOptions Options { get; }

    /// <inheritdoc />
    public abstract string Name { get; }

    /// <inheritdoc />
    public abstract string Alphabet { get; }

    /// <inheritdoc />
    public IReadOnlyList<Problem> Generate(int count, int seed)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        var problems = new Problem[count];
        for (var i = 0; i < count; i++) problems[i] = GenerateOne(SeededRandom.ForProblem(seed, i, _salt));
        return problems;
    }

    /// <summary>One problem drawn from <paramref name="rng"/>, the problem's own stream.</summary>
    protected abstract Problem GenerateOne(SeededRandom rng);

    /// <inheritdoc />
    public abstract string Solve(Problem problem);

    /// <inheritdoc />
    public abstract Verdict Verify(Problem problem, string completion);

    /// <inheritdoc />
    public abstract string? ExtractFinalAnswer(string completion);
}
