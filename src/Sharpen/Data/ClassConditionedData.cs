namespace Sharpen.Data;

/// <summary>
/// SFT rows for C-RLFT (class-conditioned SFT): ordinary SFT rows whose class (data source) is the string in a field such
/// as <c>"source": "gpt4"</c>. A row without the field or with a class that has no weight stops at <c>file:line</c>
/// naming the known classes (or, with <c>skipBadLines</c>, is counted and skipped).
/// </summary>
public static class ClassConditionedData
{
    /// <summary>Reads an SFT file whose rows must carry a class in <paramref name="classField"/>, one of <paramref name="classes"/>.</summary>
    public static LoadResult<SftExample> LoadSft(string path, string classField, IReadOnlyCollection<string> classes, bool skipBadLines = false)
    {
        var known = string.Join(", ", classes.Order(StringComparer.Ordinal).Select(c => $"\"{c}\""));
        var expected = $"an SFT row ({JsonlDataset.SftExpected}) with \"{classField}\": one of {known}";
        return JsonlDataset.Read(path, expected, row =>
        {
            var e = JsonlDataset.ParseSft(row);
            if (!e.Fields.TryGetValue(classField, out var c)) throw row.Error($"key \"{classField}\" (the row's class) is missing; known classes: {known}");
            if (!classes.Contains(c)) throw row.Error($"unknown class \"{c}\" in \"{classField}\"; known classes: {known}");
            return e;
        }, skipBadLines);
    }
}
