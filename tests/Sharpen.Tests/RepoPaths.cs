namespace Sharpen.Tests;

/// <summary>Locates files of the repository (recipes, examples) from the test's output folder.</summary>
static class RepoPaths
{
    public static string Root { get; } = Find();

    static string Find()
    {
        var dir = new DirectoryInfo(AppContext.BaseDirectory);
        while (dir is not null && !File.Exists(Path.Combine(dir.FullName, "Sharpen.sln"))) dir = dir.Parent;
        return dir?.FullName ?? throw new InvalidOperationException("Sharpen.sln not found above " + AppContext.BaseDirectory);
    }

    public static string Of(params string[] parts) => Path.Combine([Root, .. parts]);
}
