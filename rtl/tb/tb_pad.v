// tb_pad: nuq_pad for every combination of position, stored level and zero point: inside
// the input the stored level, outside the zero-point level (input_zp) or 0.
`timescale 1ns/1ps
module tb_pad;
    reg in_bounds, has_zp;
    reg [7:0] level, zp_level;
    wire [7:0] value;
    nuq_pad dut (.in_bounds(in_bounds), .level(level), .has_zp(has_zp), .zp_level(zp_level), .value(value));
    integer errors, checks, i, j, k;
    reg [7:0] expect_v;
    initial begin
        errors = 0; checks = 0;
        for (i = 0; i < 4; i = i + 1)
            for (j = 0; j < 256; j = j + 5)
                for (k = 0; k < 256; k = k + 3) begin
                    in_bounds = i[0]; has_zp = i[1]; level = j; zp_level = k;
                    #1;
                    expect_v = in_bounds ? level : (has_zp ? zp_level : 8'd0);
                    checks = checks + 1;
                    if (value !== expect_v) begin
                        errors = errors + 1;
                        if (errors < 5) $display("FAIL in=%0d zp=%0d level=%0d zp_level=%0d got=%0d", in_bounds, has_zp, level, zp_level, value);
                    end
                end
        if (errors == 0) $display("PASS tb_pad checks=%0d", checks);
        else $display("FAIL tb_pad errors=%0d of %0d", errors, checks);
        $finish;
    end
endmodule
