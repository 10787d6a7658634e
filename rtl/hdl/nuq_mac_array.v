// nuq_mac_array: P multiply-accumulate lanes, u8 activation level x i8 weight level -> i32.
//
// Each cycle (en) the lanes carry P products of a flattened stream of dot products: lanes
// with seg = 0 belong to the current output, lanes with seg = 1 to the next one (a window
// of P lanes spans at most one output boundary). The current accumulator starts at bias_cur
// (start) and, when finish is set, the cycle's seg-0 sum completes it: result/done hold it
// the next cycle and the accumulator restarts at bias_next plus the seg-1 sum. Sums wrap
// modulo 2^32 like the integer model's i32 accumulator (which never overflows for a model
// the runner accepts).
`default_nettype none
module nuq_mac_array #(
    parameter P = 16
) (
    input  wire           clk,
    input  wire           rst,
    input  wire           en,
    input  wire [P*8-1:0] act,        // u8 levels
    input  wire [P*8-1:0] wgt,        // i8 levels
    input  wire [P-1:0]   valid,      // lane carries a product
    input  wire [P-1:0]   seg,        // 0: current output, 1: next output
    input  wire           start,      // accumulator starts at bias_cur this cycle
    input  wire [31:0]    bias_cur,
    input  wire           finish,     // the current output ends this cycle
    input  wire [31:0]    bias_next,  // bias of the output after it
    output reg            done,       // result is valid (one cycle after finish)
    output reg  [31:0]    result
);
    reg  [31:0] acc;
    reg  [31:0] sum0, sum1;
    // one 9 x 8 signed multiplier per lane (u8 zero-extended), 17-bit products
    wire [P*17-1:0] prods;
    genvar g;
    generate
        for (g = 0; g < P; g = g + 1) begin : lane
            wire signed [8:0]  a9 = {1'b0, act[8*g +: 8]};
            wire signed [7:0]  w8 = wgt[8*g +: 8];
            wire signed [16:0] pr = a9 * w8;
            assign prods[17*g +: 17] = pr;
        end
    endgenerate
    integer l;
    always @(*) begin
        sum0 = 32'd0;
        sum1 = 32'd0;
        for (l = 0; l < P; l = l + 1) begin
            if (valid[l] && !seg[l]) sum0 = sum0 + {{15{prods[17*l+16]}}, prods[17*l +: 17]};
            if (valid[l] &&  seg[l]) sum1 = sum1 + {{15{prods[17*l+16]}}, prods[17*l +: 17]};
        end
    end
    wire [31:0] cur = (start ? bias_cur : acc) + sum0;
    always @(posedge clk) begin
        if (rst) begin
            acc  <= 32'd0;
            done <= 1'b0;
            result <= 32'd0;
        end else begin
            done <= en && finish;
            if (en) begin
                if (finish) begin
                    result <= cur;
                    acc    <= bias_next + sum1;
                end else begin
                    acc <= cur;
                end
            end
        end
    end
endmodule
`default_nettype wire
