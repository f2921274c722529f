package ai.segserve.plugins;

import java.util.ArrayList;
import java.util.Collections;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Set;

/** The model names the deployment needs before it may call itself healthy. */
final class RequiredModels {

    /** Comma-separated model names, entry model (the router) first, e.g. "router,langsam,sam2". */
    static final String ENV_VAR = "SEGSERVE_REQUIRED_MODELS";

    private RequiredModels() {}

    /** The names from {@link #ENV_VAR} in the order given; empty when it is unset or blank. */
    static List<String> fromEnvironment() {
        return parse(System.getenv(ENV_VAR));
    }

    /** Splits on commas, trims, drops empty entries and duplicates, keeps the order. */
    static List<String> parse(String value) {
        if (value == null) {
            return Collections.emptyList();
        }
        Set<String> names = new LinkedHashSet<>();
        for (String part : value.split(",")) {
            String name = part.trim();
            if (!name.isEmpty()) {
                names.add(name);
            }
        }
        return Collections.unmodifiableList(new ArrayList<>(names));
    }
}
