namespace Sharpen.Checkpoints;

/// <summary>Whole-file writes that readers never see half done.</summary>
public static class AtomicFile
{
    /// <summary>Writes a file through a temporary sibling and a rename, so readers never see half a file.</summary>
    public static void WriteAllText(string path, string text)
    {
        var tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        File.WriteAllText(tmp, text);
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Writes bytes through a temporary sibling and a rename, so readers never see half a file.</summary>
    public static void WriteAllBytes(string path, byte[] bytes)
    {
        var tmp = Path.Combine(Path.GetDirectoryName(Path.GetFullPath(path))!, $".{Path.GetFileName(path)}.{Guid.NewGuid():N}.tmp");
        File.WriteAllBytes(tmp, bytes);
        File.Move(tmp, path, overwrite: true);
    }
}
