using Sharpen.Data;
using Sharpen.Tasks;

namespace Sharpen.Environments;

/// <summary>
/// Text maze navigation with partial observation: a perfect maze (one path between any two cells) of
/// Width × Height cells carved from the seed by a randomized depth-first search; the policy starts in the top-left
/// cell and must reach the bottom-right one, seeing only which ways are open from where it stands.
/// <code>
/// maze, open: e s          (first observation)
/// s → open: n e            w → wall, open: n e      x → invalid, open: n e
/// ... → exit               (reward 1, done)
/// </code>
/// Moves are <c>n</c>, <c>s</c>, <c>e</c>, <c>w</c> (or <c>north</c>, ...); a move into a wall or an invalid move spends
/// a turn in place. Info: <c>outcome</c>, <c>valid</c>, <c>position</c> (<c>x,y</c>).
/// </summary>
public sealed class MazeEnvironment : TextEnvironment
{
    const ulong Salt = 0x3A2E_0001;
    static readonly (char Name, int Dx, int Dy)[] Directions = [('n', 0, -1), ('s', 0, 1), ('e', 1, 0), ('w', -1, 0)];

    // _open[x, y, d]: the way from cell (x, y) in direction d is open.
    bool[,,] _open = new bool[1, 1, 4];
    int _x, _y;

    /// <summary>A maze with <paramref name="options"/>.</summary>
    public MazeEnvironment(MazeOptions? options = null)
    {
        Options = options ?? new MazeOptions();
        Options.Validate();
    }

    /// <summary>The options.</summary>
    public MazeOptions Options { get; }

    /// <inheritdoc />
    public override string Name => "maze";

    /// <inheritdoc />
    public override string Alphabet { get; } = AlphabetOf("maze, open: nsew", "north south east west", "wall invalid exit lost");

    /// <summary>Where the policy stands (x across, y down).</summary>
    public (int X, int Y) Position => (_x, _y);

    /// <summary>True when the way from cell (<paramref name="x"/>, <paramref name="y"/>) towards <paramref name="direction"/>
    /// (n, s, e, w) is open.</summary>
    public bool IsOpen(int x, int y, char direction) => _open[x, y, Array.FindIndex(Directions, d => d.Name == direction)];

    /// <inheritdoc />
    protected override IReadOnlyList<ChatMessage> OnReset(int seed)
    {
        int w = Options.Width, h = Options.Height;
        _open = new bool[w, h, 4];
        var rng = SeededRandom.ForProblem(seed, 0, Salt);
        var seen = new bool[w, h];
        var stack = new Stack<(int X, int Y)>();
        stack.Push((0, 0));
        seen[0, 0] = true;
        while (stack.Count > 0)
        {
            var (x, y) = stack.Peek();
            var next = Enumerable.Range(0, 4).Where(d => Inside(x + Directions[d].Dx, y + Directions[d].Dy) && !seen[x + Directions[d].Dx, y + Directions[d].Dy]).ToArray();
            if (next.Length == 0) { stack.Pop(); continue; }
            int dir = next[rng.Next(0, next.Length - 1)];
            int nx = x + Directions[dir].Dx, ny = y + Directions[dir].Dy;
            _open[x, y, dir] = true;
            _open[nx, ny, dir ^ 1] = true;   // n<->s, e<->w are index pairs (0,1) and (2,3)
            seen[nx, ny] = true;
            stack.Push((nx, ny));
        }
        (_x, _y) = (0, 0);
        return User("maze, " + OpenText());
    }

    /// <inheritdoc />
    protected override EnvironmentStep OnStep(string action)
    {
        bool last = Turns >= Options.MaxTurns;
        var a = action.Trim().ToLowerInvariant();
        int dir = a switch { "n" or "north" => 0, "s" or "south" => 1, "e" or "east" => 2, "w" or "west" => 3, _ => -1 };
        string text;
        if (dir < 0) text = "invalid, " + OpenText();
        else if (!_open[_x, _y, dir]) text = "wall, " + OpenText();
        else
        {
            _x += Directions[dir].Dx;
            _y += Directions[dir].Dy;
            if (_x == Options.Width - 1 && _y == Options.Height - 1)
                return Answer("exit", 1, true, ("outcome", "won"), ("valid", "true"), ("position", Pos()));
            text = OpenText();
        }
        var valid = dir < 0 ? "false" : "true";
        if (last) return Answer("lost", 0, true, ("outcome", "lost"), ("valid", valid), ("position", Pos()));
        return Answer(text, 0, false, ("outcome", "playing"), ("valid", valid), ("position", Pos()));
    }

    string OpenText() => "open: " + string.Join(' ', Enumerable.Range(0, 4).Where(d => _open[_x, _y, d]).Select(d => Directions[d].Name));

    string Pos() => $"{_x},{_y}";

    bool Inside(int x, int y) => x >= 0 && y >= 0 && x < Options.Width && y < Options.Height;
}
