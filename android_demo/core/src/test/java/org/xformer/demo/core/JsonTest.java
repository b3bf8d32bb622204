package org.xformer.demo.core;

import static org.junit.Assert.assertEquals;
import static org.junit.Assert.assertNull;
import static org.junit.Assert.assertTrue;
import static org.junit.Assert.fail;

import java.util.Arrays;
import java.util.List;
import java.util.Map;

import org.junit.Test;

public class JsonTest {
    @Test
    @SuppressWarnings("unchecked")
    public void parsesNestedValues() {
        Map<String, Object> m = (Map<String, Object>) Json.parse(
                " {\"a\": [1, -2.5, 3e2, 1E-3], \"b\": {\"c\": true, \"d\": false, \"e\": null}, \"f\": \"x\"} ");
        assertEquals(Arrays.<Object>asList(1.0, -2.5, 300.0, 0.001), m.get("a"));
        Map<String, Object> b = (Map<String, Object>) m.get("b");
        assertEquals(Boolean.TRUE, b.get("c"));
        assertEquals(Boolean.FALSE, b.get("d"));
        assertTrue(b.containsKey("e"));
        assertNull(b.get("e"));
        assertEquals("x", m.get("f"));
        assertEquals(Arrays.asList("a", "b", "f"), Arrays.asList(m.keySet().toArray()));
    }

    @Test
    public void decodesEscapesAndUnicode() {
        assertEquals("tab\t \"q\" \\ / \u00e9 \u4e2d\n", Json.parse("\"tab\\t \\\"q\\\" \\\\ \\/ \\u00e9 \u4e2d\\n\""));
    }

    @Test
    public void keepsPythonFloatsExact() {
        // json.dumps(1/255) and float32 values written as doubles must come back bit-identical.
        assertEquals(1 / 255.0, (Double) Json.parse("0.00392156862745098"), 0);
        assertEquals((double) 0.0186f, (Double) Json.parse("0.01860000006854534"), 0);
    }

    @Test
    public void emptyContainers() {
        assertEquals(0, ((Map<?, ?>) Json.parse("{}")).size());
        assertEquals(0, ((List<?>) Json.parse("[ ]")).size());
    }

    @Test
    public void rejectsMalformedInputWithAnOffset() {
        String[] bad = {"{\"a\": 1,}", "[1 2]", "{\"a\" 1}", "\"open", "tru", "01x", "-", "1.", "{} extra", "\"\\x\""};
        for (String text : bad) {
            try {
                Json.parse(text);
                fail("accepted malformed JSON: " + text);
            } catch (IllegalArgumentException e) {
                assertTrue(e.getMessage(), e.getMessage().startsWith("invalid JSON at offset"));
            }
        }
    }
}
